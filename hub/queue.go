package hub

// maxKeptQueueCap is the longest frame list a connection keeps between bursts; a burst
// that grew it further gives the memory back to the garbage collector afterwards.
const maxKeptQueueCap = 1024

// outQueue is one connection's outbound frames, bounded in bytes rather than in frames
// so that a client cannot pin an unbounded amount of memory with a few huge messages or
// many small ones. It has no lock of its own: its writer.mu guards it.
//
// Bytes handed to the writer stay counted until the writer has written them, so the
// bound covers everything the connection holds, not only what waits in the list.
type outQueue struct {
	frames  [][]byte // complete WebSocket frames, oldest first; shared, never modified
	queued  int      // bytes in frames
	writing int      // bytes the writer took and has not finished writing
	limit   int      // Config.MaxQueueBytes
}

// size returns the bytes the connection holds for its client.
func (q *outQueue) size() int { return q.queued + q.writing }

// push appends frame unless that would take the queue over its limit. A frame larger
// than the whole limit is still accepted into an otherwise empty queue, so one big
// message never costs a healthy client its connection.
func (q *outQueue) push(frame []byte) bool {
	if q.size() > 0 && q.size()+len(frame) > q.limit {
		return false
	}
	q.frames = append(q.frames, frame)
	q.queued += len(frame)
	return true
}

// take hands every queued frame to the writer, replacing the list with spare (an empty
// list whose memory the writer is done with). The bytes stay counted until done.
func (q *outQueue) take(spare [][]byte) (frames [][]byte) {
	frames = q.frames
	q.frames = spare[:0]
	q.writing += q.queued
	q.queued = 0
	return frames
}

// done uncounts the bytes of the last take, now written (or abandoned).
func (q *outQueue) done() { q.writing = 0 }

// wrote uncounts n bytes of the last take, now written; the rest stays counted until
// written too.
func (q *outQueue) wrote(n int) { q.writing -= n }

// drop discards every queued frame: a connection closing without a flush has no use
// for them.
func (q *outQueue) drop() {
	clear(q.frames)
	q.frames = q.frames[:0]
	q.queued = 0
}

// recycle prepares a list the writer has finished with for reuse as the next spare.
func recycle(frames [][]byte) [][]byte {
	if cap(frames) > maxKeptQueueCap {
		return nil
	}
	clear(frames) // drop the references so written frames can be collected
	return frames[:0]
}
