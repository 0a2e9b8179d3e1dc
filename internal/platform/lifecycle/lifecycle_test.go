package lifecycle

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestStopsInReverseOrderAndReportsFirstError(t *testing.T) {
	r := New()
	var mu sync.Mutex
	var order []string
	record := func(name string) func(context.Context) error {
		return func(ctx context.Context) error {
			<-ctx.Done()
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return nil
		}
	}
	r.Stage("store").Go("registry", record("registry"))
	r.Stage("send").Go("producer", record("producer"))
	read := r.Stage("read")
	read.Go("collector", record("collector"))
	boom := errors.New("boom")
	for i := 0; i < 10; i++ { // many failures must not block anything
		read.Go("bad", func(context.Context) error { return boom })
	}
	var stopped []string
	err := r.Wait(context.Background(), func(s *Stage) { stopped = append(stopped, s.Name) })
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "bad: ") {
		t.Fatalf("error %v", err)
	}
	if strings.Join(stopped, ",") != "read,send,store" {
		t.Fatalf("stages stopped in order %v", stopped)
	}
	if strings.Join(order, ",") != "collector,producer,registry" {
		t.Fatalf("components returned in order %v", order)
	}
}

func TestCleanStop(t *testing.T) {
	r := New()
	r.Stage("a").Go("x", func(ctx context.Context) error { <-ctx.Done(); return nil })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Wait(ctx, nil); err != nil {
		t.Fatal(err)
	}
}
