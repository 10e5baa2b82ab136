package engine

import (
	"fmt"
	"time"
)

// Timer limits.
const (
	// maxTimers is how many socket:after timers one channel may have pending;
	// a script that schedules more is in a runaway loop.
	maxTimers = 1000
	// maxTimerDelay is the longest socket:after delay.
	maxTimerDelay = 24 * time.Hour
)

// After is socket:after(ms, msg): handle_info(msg, socket) runs on this
// channel after ms milliseconds, in order with its other events. Timers die
// with the channel.
func (c *channel) After(ms int, msg []byte) error {
	d := time.Duration(ms) * time.Millisecond
	if ms < 0 || d > maxTimerDelay {
		return fmt.Errorf("socket:after: delay %d ms is outside 0..%d", ms, maxTimerDelay.Milliseconds())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mb.isClosed() {
		return nil // the channel is ending; its timers with it
	}
	if len(c.timers) >= maxTimers {
		return fmt.Errorf("socket:after: %d timers already pending on this channel", maxTimers)
	}
	if c.timers == nil {
		c.timers = make(map[Timer]struct{})
	}
	var t Timer
	t = c.e.cfg.Clock.AfterFunc(d, func() {
		c.mu.Lock()
		_, live := c.timers[t]
		delete(c.timers, t)
		c.mu.Unlock()
		if live {
			c.post(event{kind: evInfo, info: msg})
		}
	})
	c.timers[t] = struct{}{}
	return nil
}

// stopTimersLocked cancels every pending timer. c.mu must be held.
func (c *channel) stopTimersLocked() {
	for t := range c.timers {
		t.Stop()
	}
	c.timers = nil
}

func (c *channel) handleInfo(msg []byte) {
	if !c.joined {
		return
	}
	script := c.file.script()
	if !script.HasHandleInfo() {
		c.e.count.noHandleInfo.Add(1)
		if script.FirstTime("handle_info") {
			c.e.log.Warn("socket:after message dropped: the script has no handle_info", "script", script.Name(), "topic", c.topic, "msg", string(msg))
		}
		return
	}
	err := script.HandleInfo(c.e.ctx, c, c.assigns, msg)
	c.flush()
	if err != nil {
		c.logScriptError(script, "handle_info", err)
		c.crash()
	}
}
