package tailer

import (
	"context"
	"path/filepath"
	"slices"
	"sync"

	"github.com/fsnotify/fsnotify"
	"github.com/sirupsen/logrus"
)

// Notifier wakes tailers when the kernel reports a change to their file or
// its directory (inotify), so an idle file costs no polling at the normal
// rate: a tailer with a Notifier re-checks its file on every event and
// otherwise only every IdlePoll, as a safety net for file systems without
// inotify (NFS, FUSE). One Notifier serves all tailers of an agent and
// watches directories, not files, so rotation and re-creation are seen
// too.
type Notifier struct {
	w   *fsnotify.Watcher
	log *logrus.Entry

	mu   sync.Mutex
	subs map[string][]chan struct{} // file path -> wake channels (mostly one)
	dirs map[string]int             // watched dir -> subscribers
}

// NewNotifier starts an inotify watcher. If the system has none (or no
// watches left), it returns nil and tailers simply poll.
func NewNotifier(log *logrus.Entry) *Notifier {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.WithError(err).Warn("inotify unavailable: files are polled")
		return nil
	}
	return &Notifier{w: w, log: log.WithField("component", "notify"), subs: map[string][]chan struct{}{}, dirs: map[string]int{}}
}

// Run delivers events until ctx ends, then closes the watcher.
func (n *Notifier) Run(ctx context.Context) error {
	defer n.w.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-n.w.Events:
			if !ok {
				return nil
			}
			n.wake(filepath.Clean(ev.Name))
		case err, ok := <-n.w.Errors:
			if !ok {
				return nil
			}
			// Overflow (or any error): some events were lost; wake
			// everyone to re-check.
			n.log.WithError(err).Debug("inotify error; waking every tailer")
			n.wakeAll()
		}
	}
}

func (n *Notifier) wake(path string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ch := range n.subs[path] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (n *Notifier) wakeAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, s := range n.subs {
		for _, ch := range s {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// Subscribe returns a channel signalled when path (or its directory
// entry) changes, and a function that ends the subscription. ok is false
// if the directory cannot be watched; then the caller polls.
func (n *Notifier) Subscribe(path string) (wake <-chan struct{}, cancel func(), ok bool) {
	path = filepath.Clean(path)
	dir := filepath.Dir(path)
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.dirs[dir] == 0 {
		if err := n.w.Add(dir); err != nil {
			return nil, func() {}, false
		}
	}
	n.dirs[dir]++
	n.subs[path] = append(n.subs[path], ch)
	return ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		subs := slices.DeleteFunc(n.subs[path], func(c chan struct{}) bool { return c == ch })
		if len(subs) == 0 {
			delete(n.subs, path)
		} else {
			n.subs[path] = subs
		}
		if n.dirs[dir]--; n.dirs[dir] == 0 {
			delete(n.dirs, dir)
			_ = n.w.Remove(dir) // fails harmlessly if the dir is gone
		}
	}, true
}
