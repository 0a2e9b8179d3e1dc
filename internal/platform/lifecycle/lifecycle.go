// Package lifecycle runs a daemon's long-running components in stages:
// every stage starts its components with its own context, and when the
// daemon stops (its context ends or a component fails) the stages are
// stopped one by one in reverse order of creation, each waited for before
// the next. Components are `Run(ctx) error` functions.
package lifecycle

import (
	"context"
	"fmt"
	"sync"
)

// Runner owns the stages.
type Runner struct {
	mu     sync.Mutex
	first  error
	failed chan struct{}
	once   sync.Once
	stages []*Stage
}

// New returns an empty Runner.
func New() *Runner { return &Runner{failed: make(chan struct{})} }

// Stage is components that stop together.
type Stage struct {
	r      *Runner
	Name   string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Stage adds a stage; later stages are stopped first.
func (r *Runner) Stage(name string) *Stage {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stage{r: r, Name: name, ctx: ctx, cancel: cancel}
	r.stages = append(r.stages, s)
	return s
}

// Go starts fn in the stage. An error from fn stops the daemon.
func (s *Stage) Go(name string, fn func(context.Context) error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := fn(s.ctx); err != nil {
			s.r.fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
}

func (r *Runner) fail(err error) {
	r.mu.Lock()
	if r.first == nil {
		r.first = err
	}
	r.mu.Unlock()
	r.once.Do(func() { close(r.failed) })
}

// Wait blocks until ctx ends or a component fails; then it stops the
// stages in reverse order, calling before(stage) ahead of each, and
// returns the first component error (nil on a clean stop).
func (r *Runner) Wait(ctx context.Context, before func(*Stage)) error {
	select {
	case <-ctx.Done():
	case <-r.failed:
	}
	for i := len(r.stages) - 1; i >= 0; i-- {
		s := r.stages[i]
		if before != nil {
			before(s)
		}
		s.cancel()
		s.wg.Wait()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first
}

// Failed is closed when a component has failed.
func (r *Runner) Failed() <-chan struct{} { return r.failed }
