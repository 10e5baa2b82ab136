package engine

import (
	"errors"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Reload timing.
const (
	// quietPeriod is how long the folder must be still after an event before
	// it is rescanned, so an editor's write-rename-delete dance is one reload.
	quietPeriod = 100 * time.Millisecond
	// rescanEvery is the safety net for changes no event reported (network
	// filesystems, some container mounts).
	rescanEvery = 5 * time.Second
)

// watch starts the watcher, which reloads scripts whenever the folder changes,
// until the engine closes. It watches the folder rather than the files, so
// every way an editor or a ConfigMap mount replaces a file is seen, and it
// rescans on a timer in case an event was lost. It returns once the watcher is
// set up; the goroutine counts in e.loops, and Close stops and waits for it.
func (e *Engine) watch() error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	if err := e.watchDirs(w); err != nil {
		w.Close()
		return err
	}
	e.watching.Store(true)
	e.loops.Add(1)
	go func() {
		defer e.loops.Done()
		defer e.watching.Store(false)
		defer w.Close()
		e.watchLoop(w)
	}()
	return nil
}

func (e *Engine) watchLoop(w *fsnotify.Watcher) {
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	// settling is true from an event until the quiet period passes: a rescan
	// then could catch an editor between removing a file and writing it
	// back, and close that script's channels for nothing.
	settling := false
	tick := time.NewTicker(rescanEvery)
	defer tick.Stop()
	rescan := func() {
		// Watch first, then read: a file saved in a new lib/ folder between
		// the two is then either read by this rescan or seen as an event.
		// The other order lost such a save until the next timed rescan.
		if err := e.watchDirs(w); err != nil {
			e.log.Warn("cannot watch scripts folder", "err", err)
		}
		if err := e.Reload(); err != nil {
			e.log.Error("scripts folder rescan failed", "err", err)
		}
	}
	for {
		select {
		case <-e.ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			e.log.Debug("scripts folder changed", "file", ev.Name, "op", ev.Op.String())
			settling = true
			quiet.Reset(quietPeriod)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Events were lost: rescan once the folder is quiet.
				e.log.Warn("file events overflowed; rescanning the scripts folder")
				settling = true
				quiet.Reset(quietPeriod)
				continue
			}
			e.log.Warn("watching scripts folder", "err", err)
		case <-quiet.C:
			settling = false
			rescan()
		case <-tick.C:
			if !settling {
				rescan()
			}
		case <-e.rescanNow:
			// SIGHUP: an operator asking; still let a save in progress finish.
			if settling {
				quiet.Reset(quietPeriod)
			} else {
				rescan()
			}
		}
	}
}

// RequestRescan asks the watcher to rescan the folder (what SIGHUP does). It
// never blocks; a rescan already requested covers this one. Without a running
// watcher (Config.Watch off), it rescans at once.
func (e *Engine) RequestRescan() {
	if !e.watching.Load() {
		if err := e.Reload(); err != nil {
			e.log.Error("scripts folder rescan failed", "err", err)
		}
		return
	}
	select {
	case e.rescanNow <- struct{}{}:
	default:
	}
}

// watchDirs adds the scripts folder and every folder below lib/ to w.
// Adding a folder already watched is harmless.
func (e *Engine) watchDirs(w *fsnotify.Watcher) error {
	if err := w.Add(e.cfg.Dir); err != nil {
		return err
	}
	lib := filepath.Join(e.cfg.Dir, "lib")
	return filepath.WalkDir(lib, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return w.Add(path)
		}
		return nil
	})
}
