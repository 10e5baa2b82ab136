package store

// Len returns how many keys s holds, expired ones not yet dropped included, and how many
// of them have a ttl.
func (s *Memory) Len() (keys, withTTL int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.vals), len(s.expires)
}
