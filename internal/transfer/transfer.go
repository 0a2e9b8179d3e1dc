// Package transfer consumes the agents' topics with a sarama consumer
// group and hands one document per record to the Elasticsearch writer. A
// partition's offset is marked only up to the contiguous prefix of records
// whose documents Elasticsearch acknowledged (or that went to the
// dead-letter topic), so a crash or a rebalance re-delivers, never skips;
// a re-delivered document carries the same _id and is written with
// create, so Elasticsearch answers 409 and the first copy stays.
//
// By job: group.go joins the group and follows the topics; claim.go runs
// one partition (rounds, acknowledgement marks); gate.go holds records
// until their chunk's signature can be checked; document.go builds and
// renders documents; deadletter.go publishes what may not be indexed.
package transfer

import (
	"context"
	"time"

	"github.com/IBM/sarama"

	"github.com/logpipe/logpipe/internal/contract/record"
	"github.com/logpipe/logpipe/internal/platform/config"
	"github.com/logpipe/logpipe/internal/transfer/eswriter"
	"github.com/logpipe/logpipe/internal/transfer/index"
	"github.com/logpipe/logpipe/internal/transfer/pipeline"
)

// Submitter takes documents, all or (when ctx ends first) none of them,
// and owns the slice from then on; it blocks while the writer is full.
type Submitter interface {
	Submit(ctx context.Context, docs []*eswriter.Doc) error
}

// maxSubmit is the most documents a claim hands the writer at once: what
// its partition consumer had buffered, up to this.
const maxSubmit = 256

// Options configure a Consumer.
type Options struct {
	Kafka  config.Consumer
	Sarama *sarama.Config
	Index  *index.Name
	Topics *Topics
	Out    Submitter
	// Prepare runs once per topic before it is first consumed (template
	// installation). It makes one attempt: a topic whose Prepare fails is
	// held back and retried every TopicRecheck while the others are
	// consumed.
	Prepare func(ctx context.Context, topic string) error
	// MaxFuture bounds how far past the record's Kafka timestamp its
	// index-time stamp may be and still pick its daily index (0:
	// unbounded); MaxAge likewise before it. A record outside is placed by
	// its Kafka timestamp, marked with event.timestamp_out_of_range.
	MaxFuture, MaxAge time.Duration
	// Pipelines resolves the records' pipeline headers (nil: built-ins
	// only).
	Pipelines *pipeline.Set
	// PipelinesReady, if set, says whether the custom pipelines are known
	// (nil) or not yet: a record naming a pipeline that is not built in
	// then holds its partition until they are (indexed now, it would be
	// indexed unprocessed, for good); the other partitions flow.
	PipelinesReady func() error
	// Verify, if set, checks each record's origin before anything else is
	// done with it.
	Verify Verifier
	// DrainTimeout bounds the wait, when a partition is revoked or at
	// shutdown, for its in-flight documents to be acknowledged.
	DrainTimeout time.Duration
}

// Verifier tells an agent's records from forgeries (keyring.Ring).
type Verifier interface {
	// Check fills out[i] with whether msgs[i] is indexed or quarantined,
	// and whether it carries a verified signature. msgs are consecutive
	// records of one partition, views their parsed headers: either a
	// chunk, whose signature is on the last record, or one record that no
	// signature covers (see gate). It may wait (this claim only) while it
	// cannot tell yet; false if ctx ended first. round is when the claim
	// took the records in hand; ch is the claim's.
	Check(ctx context.Context, msgs []*sarama.ConsumerMessage, views []record.View, round time.Time, ch *record.Chunk, out []record.Verdict) bool
}
