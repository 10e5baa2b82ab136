// Package engine runs channels: it routes each topic to the Lua script that
// serves it (the most specific pattern wins), drives a channel's lifecycle
// (join, events, broadcasts through handle_out, timers, leave, crash) one
// event at a time, tracks presence, and swaps scripts when they change on
// disk, closing the channels of a deleted one.
//
// The engine is the hub's Handler and luabind's Host: it speaks to sockets
// through hub's types and to Lua through luabind, and owns neither the wire
// nor the VMs. cmd/luachan wires it to the hub through Broadcaster.
//
// # Locks
//
//	Engine.mu       the script files, their load attempts and errors
//	scriptFile.mu   one file's joined channels and whether it takes more
//	session.mu      one socket's channels by topic; never held with any other
//	channel.mu      one channel's subscription and timers; closing its mailbox with them is one step
//	mailbox.mu      one channel's queued events, who owns them, and whether it takes more
//	history stream  one topic's memory history (package history); Publish holds it across Hub.Broadcast
//	                (a shared HistoryStore, Redis's, takes no lock of the engine's: Redis orders)
//	topicStates.mu  the topic states by topic; before topicState.mu
//	topicState.mu   one topic state's queue, subscriber count, timers and whether this node owns it
//	                (TopicOwners calls Owned and Lost holding its own locks, which come first;
//	                the engine never calls TopicOwners holding either)
//
// Lock order: Engine.mu before scriptFile.mu, and Engine.mu before
// channel.mu (a reload stops the channels of a deleted file while holding
// it); channel.mu before mailbox.mu and before the hub's locks (subscribe
// holds it across Hub.SubscribeAfter, so a stop cannot slip between the
// check and the subscription). mailbox.mu is a leaf: nothing is called while
// it is held. A topic's history lock comes before the hub's locks and
// mailbox.mu (Publish delivers under it, so positions and delivery order
// agree); it is never taken under another. No channel callback runs under any of them; what may wait
// under one is a reload under Engine.mu, and Hub.SubscribeAfter under
// channel.mu, on a PubSub subscribe.
//
// # Goroutines
//
// A channel's events run on whoever owns its mailbox (see mailbox): the
// socket's reader, for an event of a socket's only channel (runNow); an
// intercept worker, for the broadcasts at its head; otherwise a goroutine
// started for it, which exits once the mailbox is empty. Each owner is
// counted in Engine.wg from acquiring the mailbox to releasing it, so
// Engine.Close waits for every channel still running (after the hub's Close,
// each is running its leave), and WaitIdle sees the engine idle.
//
// A topic's state jobs (calls, ticks, terminate) run one at a time: a call
// on an idle topic of this node on its caller's goroutine (runIdle), the rest
// on a drain goroutine started when the queue fills and ended when it empties,
// counted in Engine.wg like a mailbox's owner.
//
// Start starts the intercept workers (GOMAXPROCS of them) and, with
// Config.Watch, the watcher; both are counted in Engine.loops and run until
// Close cancels the engine's context and waits for them. socket:after timers
// are the Clock's; a channel stops its own when it ends.
package engine
