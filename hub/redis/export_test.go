package redis

// Node is this node's id in the topics' interest sets, for tests that act as a node.
func (s *TopicStates) Node() string { return s.node }
