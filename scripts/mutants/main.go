// Command mutants breaks the pipeline's guarantees on purpose, one at a
// time, and checks that the tests named for each guarantee then fail.
//
// For every mutant it copies the repository's tracked files into a
// temporary directory (sharing .cache, where the real servers' jars are),
// applies the mutant's edits (each must match exactly once inside the
// declaration it names, so a mutant that no longer fits the code is
// reported, not skipped; code moved between files keeps its mutants), and
// runs the named tests there. TestEveryMutantApplies checks, in make
// test, that every mutant still finds its code. A mutant the tests do not catch "survives", and the
// command exits 1. `make test` runs it; add a mutant with every guarantee.
//
//	go run ./scripts/mutants [-only substring] [-v]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// edit replaces old, which must occur once in the declaration fn of the
// mutant's package ("": the mutant's fn), by new.
type edit struct{ fn, old, new string }

// target is a package and a -run pattern.
type target struct{ pkg, run string }

type mutant struct {
	name  string // the guarantee broken
	pkg   string // the package directory, from the repository's root
	fn    string // the declaration in it the edits go in (see anchor.go)
	edits []edit
	tests []target // each must fail on the mutant
}

var mutants = []mutant{
	{
		name: "agent marks a line durable when its request is written, before Kafka's ack",
		pkg:  "internal/agent/producer",
		fn:   "engine.send",
		edits: []edit{{
			old: "\t\te.p.m.sentN.Add(uint64(set.activity()))\n",
			new: "\t\te.p.m.sentN.Add(uint64(set.activity()))\n\t\tfor _, ps := range set.parts {\n\t\t\tfor _, c := range ps.chunks {\n\t\t\t\tfor i := c.from; i < c.to; i++ {\n\t\t\t\t\tc.st.batch.Events[i].Acker.Ack(c.st.batch.Events[i].Seq)\n\t\t\t\t}\n\t\t\t}\n\t\t}\n",
		}},
		tests: []target{{"./internal/agent/producer", "^TestOffsetMovesOnlyOverAcknowledgedPrefix$"}, {"./cmd/logagent", "^TestSIGKILLWhileBrokerDown$/^kfake$"}},
	},
	{
		name: "agent hands a batch back for reuse once it is written, before Kafka acknowledged it (a re-send then carries reused memory)",
		pkg:  "internal/agent/producer",
		fn:   "engine.ack",
		edits: []edit{{
			old: "\t\tif st.batch.Done != nil {\n\t\t\tst.batch.Done(st.batch)\n\t\t}\n",
			new: "",
		}, {
			fn:  "engine.send",
			old: "\t\tswitch {\n\t\tcase err != nil:\n",
			new: "\t\tfor _, ps := range set.parts {\n\t\t\tfor _, c := range ps.chunks {\n\t\t\t\tif c.attempts == 0 && c.to == len(c.st.batch.Events) && c.st.batch.Done != nil {\n\t\t\t\t\tc.st.batch.Done(c.st.batch)\n\t\t\t\t}\n\t\t\t}\n\t\t}\n\t\tswitch {\n\t\tcase err != nil:\n",
		}},
		tests: []target{{"./internal/agent/producer", "^TestReusedMemoryNeverReachesTheWire$"}},
	},
	{
		name: "agent hands a batch back for reuse at the ack of its first record batch, before the rest of it reached Kafka",
		pkg:  "internal/agent/producer",
		fn:   "engine.ack",
		edits: []edit{{
			old: "\t\tif st.batch.Done != nil {\n\t\t\tst.batch.Done(st.batch)\n\t\t}\n",
			new: "",
		}, {
			old: "\tif st.left -= n; st.left == 0 {",
			new: "\tif st.left == len(st.batch.Events) && st.batch.Done != nil {\n\t\tst.batch.Done(st.batch)\n\t}\n\tif st.left -= n; st.left == 0 {",
		}},
		tests: []target{{"./internal/agent/producer", "^TestReusedMemoryNeverReachesTheWire$"}},
	},
	{
		name: "agent reuses a batch's records while some of them are still in flight",
		pkg:  "internal/agent/producer",
		fn:   "engine.ack",
		edits: []edit{{
			old: "\t\tp.recycle(st.slab)\n",
			new: "",
		}, {
			old: "\tif st.left -= n; st.left == 0 {",
			new: "\tif st.left == len(st.batch.Events) {\n\t\tp.recycle(st.slab)\n\t}\n\tif st.left -= n; st.left == 0 {",
		}},
		tests: []target{{"./internal/agent/producer", "^TestReusedMemoryNeverReachesTheWire$"}},
	},
	{
		name: "agent gives up on a record batch Kafka refused instead of re-sending it",
		pkg:  "internal/agent/producer",
		fn:   "engine.retry",
		edits: []edit{{
			old: "\tq.push(dueMsg{due: time.Now().Add(b.Next()), c: c})\n",
			new: "",
		}},
		// Nothing is lost (the registry holds the offset, and a restart reads
		// the lines again), but the file stalls: the unit test sees it.
		tests: []target{{"./internal/agent/producer", "^TestFailedSendRetriedAndHoldsOffset$"}},
	},
	{
		name: "an idle file keeps its last read buffer alive (the partial line slices the chunk)",
		pkg:  "internal/agent/tailer",
		fn:   "reader.process",
		edits: []edit{{
			old: "\tif len(rest) == 0 {\n\t\tr.carry = nil\n\t} else {\n\t\tr.carry = append([]byte(nil), rest...)\n\t}\n",
			new: "\tr.carry = rest\n",
		}},
		tests: []target{{"./internal/agent/tailer", "^TestIdleFileHoldsNoReadBuffer$"}},
	},
	{
		name: "a once-busy idle file keeps the ack ring it grew for its burst",
		pkg:  "internal/agent/tailer",
		fn:   "reader.rest",
		edits: []edit{{
			old: "\tr.h.Shrink()\n",
			new: "",
		}},
		tests: []target{{"./internal/agent/tailer", "^TestIdleFileHoldsNoReadBuffer$"}},
	},
	{
		name: "transfer commits the offsets of what it handed to the writer, not what Elasticsearch acknowledged",
		pkg:  "internal/transfer",
		fn:   "Consumer.ConsumeClaim",
		edits: []edit{{
			old: "st.done = append(st.done, d == nil)",
			new: "st.done = append(st.done, true)",
		}},
		tests: []target{{"./internal/transfer", "^TestMarkOnlyOverAcknowledgedPrefix$"}, {"./cmd/logtransfer", "^TestSIGKILLWhileElasticsearchUnavailable$"}, {"./cmd/logtransfer", "^TestSIGKILLWhileBulkAnswersDelayed$"}},
	},
	{
		name: "the registry's once-a-second save removed",
		pkg:  "internal/agent/registry",
		fn:   "Registry.RunClock",
		edits: []edit{{
			old: "\t\t\tif err := r.Save(); err != nil {\n\t\t\t\tr.log.WithError(err).Warn(\"saving registry\")",
			new: "\t\t\tif err := error(nil); err != nil {\n\t\t\t\tr.log.WithError(err).Warn(\"saving registry\")",
		}},
		// Only the registry's own test: since index-time stamps, the saves a
		// stream asks for (a limit outrun) also persist its acked offset, so
		// an agent-level run no longer shows the periodic save missing.
		tests: []target{{"./internal/agent/registry", "^TestCrashResumesAtLastSavedAck$"}},
	},
	{
		name: "no split of a batch rejected whole (413): the whole batch goes to the dead-letter topic",
		pkg:  "internal/transfer/eswriter",
		fn:   "Writer.requestFailed",
		edits: []edit{
			{old: "\tif len(docs) > 1 {\n\t\th := len(docs) / 2", new: "\tif len(docs) < 0 {\n\t\th := len(docs) / 2"},
			{old: "\tw.deadLetter(ctx, docs[0], fmt.Sprintf(\"%d %v\", status, err))\n\treturn nil",
				new: "\tfor _, d := range docs {\n\t\tw.deadLetter(ctx, d, fmt.Sprintf(\"%d %v\", status, err))\n\t}\n\treturn nil"},
		},
		tests: []target{{"./internal/transfer/eswriter", "^TestBulkOutcomes$/^413"}, {"./internal/transfer/transferd", "^TestRequestTooLargeIsSplitNotDeadLettered$"}},
	},
	{
		name: "copytruncate never reads the unread rest from the rotated copy",
		pkg:  "internal/agent/tailer",
		fn:   "Tailer.restFromCopy",
		edits: []edit{{
			old: "c, size := t.findCopy(r, n, fp, resume)\n",
			new: "c, size := t.findCopy(r, n, fp, resume)\n\tif c != nil {\n\t\tc.Close()\n\t\tc = nil\n\t}\n",
		}},
		tests: []target{{"./cmd/logagent", "^TestCopyTruncateWhileBehind$"}},
	},
	{
		name:  "a chunk read after the file was copytruncated and refilled is taken for old content",
		pkg:   "internal/agent/tailer",
		fn:    "reader.readAvailable",
		edits: []edit{{old: "\t\tif !first {\n\t\t\tsame, err := r.unchanged()", new: "\t\tif first && !first {\n\t\t\tsame, err := r.unchanged()"}},
		tests: []target{{"./internal/agent/tailer", "^TestCopyTruncateWhileHeldBack$"}},
	},
	{
		name:  "a copytruncate copy read for the old content stays unknown (re-read whole at the next rotation)",
		pkg:   "internal/agent/tailer",
		fn:    "Tailer.restFromCopy",
		edits: []edit{{old: "return true, t.registerCopy(c, size)", new: "return true, nil"}},
		tests: []target{{"./internal/agent/tailer", "^TestCopiesAreNotReadAgainAfterRename$"}},
	},
	{
		name:  "a generation whose save failed stays in use",
		pkg:   "internal/agent/registry",
		fn:    "Handle.Start",
		edits: []edit{{old: "\t\th.s.inst, h.s.instGen, h.s.tr, h.s.fpLen, h.s.fp, h.s.seen, h.s.st = old.inst, old.instGen, old.tr, old.fpLen, old.fp, old.seen, oldStamps\n", new: "\t\t_, _ = old, oldStamps\n"}},
		tests: []target{{"./internal/agent/registry", "^TestFailedStartLeavesTheStreamAsItWas$"}},
	},
	{
		name:  "streams unclaimed for a day are dropped at the first save (before the tailers claim them)",
		pkg:   "internal/agent/registry",
		fn:    "Registry.snapshot",
		edits: []edit{{old: "\t\tif s.claimed {\n\t\t\ts.seen = now\n\t\t}\n\t\tacked, _, _ := s.offsets()", new: "\t\tif s.claimed {\n\t\t\ts.seen = now\n\t\t} else if time.Since(s.seen) > 24*time.Hour {\n\t\t\tdelete(r.files, k)\n\t\t\tcontinue\n\t\t}\n\t\tacked, _, _ := s.offsets()"}},
		tests: []target{{"./internal/agent/registry", "^TestOldStreamsSurviveStartAndArePrunedOnlyWhenGone$"}},
	},
	{
		name:  "one topic's failing index template holds back every topic",
		pkg:   "internal/transfer",
		fn:    "Consumer.Run",
		edits: []edit{{old: "\t\t\t\tif err := c.opt.Prepare(ctx, t); err != nil {", new: "\t\t\t\tfor c.opt.Prepare(ctx, t) != nil && ctx.Err() == nil {\n\t\t\t\t}\n\t\t\t\tif err := ctx.Err(); err != nil {"}},
		tests: []target{{"./internal/transfer/transferd", "^TestTemplateFailureHoldsOnlyItsTopic$"}},
	},
	{
		name:  "retracting a batch that starts with a blank line leaves its events in flight",
		pkg:   "internal/contract/acktrack",
		fn:    "Tracker.Retract",
		edits: []edit{{old: "\tseq = max(seq, t.head)\n", new: "\tif seq < t.head {\n\t\treturn\n\t}\n"}},
		tests: []target{{"./internal/contract/acktrack", "^TestTrackerRetract$"}},
	},
	{
		name:  "documents are indexed (overwriting a stored _id) instead of created",
		pkg:   "internal/transfer/eswriter",
		fn:    "appendBody",
		edits: []edit{{old: "buf = append(buf, `{\"create\":{\"_index\":`...)", new: "buf = append(buf, `{\"index\":{\"_index\":`...)"}},
		tests: []target{{"./internal/transfer/transferd", "^TestStoredDocumentIsNeverReplaced$"}},
	},
	{
		name:  "index-time stamps are the read time (a line re-sent after midnight lands in a second index)",
		pkg:   "internal/agent/registry",
		fn:    "stamps.assign",
		edits: []edit{{old: "\t\t\treturn false, o // idle for a while: a fresh epoch\n\t\t}\n\t\tevs[i].Stamp = e.t\n", new: "\t\t\treturn false, o // idle for a while: a fresh epoch\n\t\t}\n\t\tevs[i].Stamp = now\n"}},
		tests: []target{{"./internal/agent/registry", "^TestResentEventsKeepTheirStampsAcrossMidnight$"}, {"./internal/agent/tailer", "^TestResentLinesKeepTheirIndexTime$"}},
	},
	{
		name:  "a line is sent with a stamp epoch not yet on disk",
		pkg:   "internal/agent/registry",
		fn:    "stamps.assign",
		edits: []edit{{old: "\t\tcase o >= st.limit, e == nil, e.gen != 0:\n", new: "\t\tcase o >= st.limit, e == nil:\n"}},
		tests: []target{{"./internal/agent/registry", "^TestLineDuringSaveWaitsForIt$"}},
	},
	{
		name:  "lines are sent past the stamp limit on disk",
		pkg:   "internal/agent/registry",
		fn:    "stamps.assign",
		edits: []edit{{old: "\t\tcase o >= st.limit, e == nil, e.gen != 0:\n", new: "\t\tcase e == nil, e.gen != 0:\n"}},
		tests: []target{{"./internal/agent/registry", "^TestBurstPastTheLimitIsSavedFirst$"}},
	},
	{
		name:  "the transfer picks the index from the read time, not the agent's index-time stamp",
		pkg:   "internal/transfer",
		fn:    "Consumer.document",
		edits: []edit{{old: "\tidxTime, out := c.placeTime(msg, meta.IndexTime, signed)\n", new: "\tidxTime, out := c.placeTime(msg, time.Time{}, signed)\n"}},
		tests: []target{{"./internal/transfer/transferd", "^TestResentAcrossMidnightLandsInOneIndex$"}, {"./internal/transfer", "^TestPlacement$"}},
	},
	{
		name:  "events dropped by a line filter are not read past (the registry stops at them)",
		pkg:   "internal/agent/tailer",
		fn:    "reader.emit",
		edits: []edit{{old: "\t\tval = nil // read past like a blank line: done, never sent\n", new: "\t\treturn nil\n"}},
		tests: []target{{"./internal/agent/tailer", "^TestFilteredEventsAreReadPast$"}},
	},
	{
		name:  "exclude_lines ignored: health checks the operator excluded are shipped",
		pkg:   "internal/platform/collectconf",
		fn:    "Entry.Keep",
		edits: []edit{{old: "\tfor _, re := range e.exclude {\n\t\tif re.Match(b) {\n", new: "\tfor _, re := range e.exclude {\n\t\tif re.Match(b) && false {\n"}},
		tests: []target{{"./cmd/logagent", "^TestExcludedLinesNeverReachKafka$"}, {"./internal/dev/e2e", "^TestProcessingThroughBothDaemons$/^fake$"}},
	},
	{
		name:  "the index follows the time a pipeline parsed from the line (a re-delivery under another pipeline version, or before pipelines load, lands in another index)",
		pkg:   "internal/transfer",
		fn:    "Consumer.document",
		edits: []edit{{old: "\tidxTime, out := c.placeTime(msg, meta.IndexTime, signed)\n", new: "\tidxTime, out := c.placeTime(msg, meta.IndexTime, signed)\n\tif parts.More != nil && !parts.More.Created.IsZero() {\n\t\tidxTime = parts.Time\n\t}\n"}},
		tests: []target{{"./internal/transfer", "^TestPlacementDependsOnTheRecordAlone$"}, {"./internal/transfer/transferd", "^TestNginxPipelineFieldsAndOwnDay$"}},
	},
	{
		name:  "the transfer consumes before it knows the custom pipelines (records naming one are indexed unprocessed, for good)",
		pkg:   "internal/transfer",
		fn:    "Consumer.knowsPipeline",
		edits: []edit{{old: "\terr := c.opt.PipelinesReady()\n\tif err == nil {\n", new: "\terr := c.opt.PipelinesReady()\n\tif true {\n"}},
		tests: []target{{"./internal/transfer/transferd", "^TestRedeliveryGivesOneDocumentPerLine$/^fake$"}},
	},
	{
		name:  "pipelines cached by an earlier run outlive etcd's answer (a pipeline deleted meanwhile keeps running)",
		pkg:   "internal/transfer/pipeline",
		fn:    "Set.Update",
		edits: []edit{{old: "\t\tif !present[name] { // cached, and no longer in etcd\n", new: "\t\tif false {\n"}},
		tests: []target{{"./internal/transfer/pipeline", "^TestSetReadyAndCache$"}},
	},
	{
		name:  "an entry with from: end recovers files rotated before it ever read (a.log.1 shipped whole before the first new line)",
		pkg:   "internal/agent/tailer",
		fn:    "Tailer.position",
		edits: []edit{{old: "\t\t\tif r != nil && !t.cfg.FromEnd {\n", new: "\t\t\tif r != nil {\n"}},
		tests: []target{{"./internal/agent/tailer", "^TestFromEndAfterRestartShipsOnlyNewLines$"}},
	},
	{
		name:  "a collect entry's patterns have no budget in all (64 patterns each under the cap: 300 MB and 0.6 CPU-s a line)",
		pkg:   "internal/platform/collectconf",
		fn:    "Entry.validate",
		edits: []edit{{old: "\t} else if insts > MaxEntryInsts {\n", new: "\t} else if false {\n"}},
		tests: []target{{"./internal/platform/collectconf", "^TestPatternBudgets$"}, {"./internal/agent", "^TestInvalidConfigKeepsRunningConfig$"}},
	},
	{
		name:  "a pipeline's regex runs whatever a line costs (a long line holds up the records behind it)",
		pkg:   "internal/transfer/pipeline",
		fn:    "compileRegex",
		edits: []edit{{old: "\t\tif !e.spend(insts, len(s)) {\n\t\t\treturn fmt.Errorf(\"matching %d bytes against %d instructions is %w\", len(s), insts, errOverBudget)\n\t\t}\n\t\tm := re.FindStringSubmatchIndex(s)\n", new: "\t\tif false && !e.spend(insts, len(s)) {\n\t\t\treturn fmt.Errorf(\"matching %d bytes against %d instructions is %w\", len(s), insts, errOverBudget)\n\t\t}\n\t\tm := re.FindStringSubmatchIndex(s)\n"}},
		tests: []target{{"./internal/transfer/pipeline", "^TestPipelineBudgets$"}, {"./internal/transfer/transferd", "^TestPipelineOverBudgetIsDeadLettered$"}},
	},
	{
		name:  "a document the pipeline refused as over budget is indexed instead of dead-lettered",
		pkg:   "internal/transfer/eswriter",
		fn:    "Writer.flush",
		edits: []edit{{old: "\t\t\tif d.Reject == \"\" {\n", new: "\t\t\tif true {\n"}},
		tests: []target{{"./internal/transfer/transferd", "^TestPipelineOverBudgetIsDeadLettered$"}},
	},
	{
		name:  "a topic may hold all of chan_max_size and buffer_bytes (one that Kafka starts refusing while busy stalls every other topic)",
		pkg:   "internal/agent/producer",
		fn:    "Producer.shareOf",
		edits: []edit{{old: "\tif len(b.Events) == 0 || ev < 1 || by < 1 {\n", new: "\tif true {\n"}},
		tests: []target{{"./internal/agent/producer", "^TestFailingTopicLeavesTheOthersTheirShare$"}, {"./internal/dev/e2e", "^TestFaultSuite$/^real$/^one_topic_refused_10s_under_load$"}},
	},
	{
		name:  "a bulk worker retries a held topic's documents itself (an index whose ingest pipeline is missing takes every worker from the other topics)",
		pkg:   "internal/transfer/eswriter",
		fn:    "Writer.flush",
		edits: []edit{{old: "\t\tif slices.ContainsFunc(retry, func(d *Doc) bool { return d.held }) {\n", new: "\t\tif false {\n"}},
		tests: []target{{"./internal/transfer/transferd", "^TestHeldTopicLeavesTheOthersFlowing$"}},
	},
	{
		name:  "a record with no time is placed by the clock (each delivery after midnight lands in another index)",
		pkg:   "internal/transfer",
		fn:    "Consumer.placeTime",
		edits: []edit{{old: "\t\treturn undated, \"undated\"\n", new: "\t\treturn time.Now(), \"undated\"\n"}},
		tests: []target{{"./internal/transfer", "^TestPlacementDependsOnTheRecordAlone$"}},
	},
	{
		name:  "an invalid custom pipeline version replaces the last good one",
		pkg:   "internal/transfer/pipeline",
		fn:    "Set.Update",
		edits: []edit{{old: "\t\tif err != nil {\n\t\t\ts.refuse(log, name, err.Error())\n", new: "\t\tif err != nil {\n\t\t\tdelete(s.custom, name)\n\t\t\ts.refuse(log, name, err.Error())\n"}},
		tests: []target{{"./internal/transfer/pipeline", "^TestSetKeepsLastGood$"}, {"./internal/transfer/transferd", "^TestCustomPipelineFromEtcd$"}},
	},
	{
		name:  "a whole-request 401 (expired credential) is taken as about the documents: split and dead-lettered",
		pkg:   "internal/transfer/eswriter",
		fn:    "Writer.requestFailed",
		edits: []edit{{old: "aboutDocs := status == http.StatusRequestEntityTooLarge || status == http.StatusBadRequest", new: "aboutDocs := status == http.StatusRequestEntityTooLarge || status == http.StatusBadRequest || status == http.StatusUnauthorized"}},
		tests: []target{{"./internal/transfer/eswriter", "^TestBulkOutcomes$/^401"}, {"./internal/dev/e2e", "^TestFaultSuite$/^fake$/^missing_topic"}},
	},
	{
		name:  "a 409 (already stored) is dead-lettered as a rejection",
		pkg:   "internal/transfer/eswriter",
		fn:    "Writer.bulk",
		edits: []edit{{old: "\t\tcase alreadyStored(r):\n", new: "\t\tcase alreadyStored(r) && false:\n"}},
		tests: []target{{"./internal/transfer/eswriter", "^TestBulkOutcomes$/^409"}, {"./internal/transfer/transferd", "^TestStoredDocumentIsNeverReplaced$"}},
	},
	{
		name:  "the transfer no longer derives the path (key) and offset (event id) the agent leaves out of the headers",
		pkg:   "internal/transfer",
		fn:    "Consumer.take",
		edits: []edit{{old: "\tv := record.ParseRecord(msg.Key, kafka.Headers(msg.Headers))\n", new: "\tv := record.Parse(kafka.Headers(msg.Headers))\n"}},
		tests: []target{{"./internal/dev/e2e", "^TestProcessingThroughBothDaemons$/^fake$"}},
	},
	{
		name:  "a glob rescan is skipped although its directory changed",
		pkg:   "internal/agent/collector",
		fn:    "globSkip.unchanged",
		edits: []edit{{old: "mod.Equal(g.mod) && g.scanned.Sub(mod) > time.Second", new: "g.scanned.Sub(g.mod) > time.Second"}},
		// Only the unit test: an agent test's directory is new, so its
		// mtime stays within the second that is never trusted.
		tests: []target{{"./internal/agent/collector", "^TestGlobSkipOnlyWhileDirectoryUnchanged$"}},
	},
	{
		name:  "a directory changed in the clock tick of the last glob scan is trusted as unchanged",
		pkg:   "internal/agent/collector",
		fn:    "globSkip.unchanged",
		edits: []edit{{old: "g.scanned.Sub(mod) > time.Second", new: "g.scanned.Sub(mod) > -time.Second"}},
		tests: []target{{"./internal/agent/collector", "^TestGlobSkipOnlyWhileDirectoryUnchanged$"}},
	},
	{
		name:  "an ingest pipeline that does not exist dead-letters every document",
		pkg:   "internal/transfer/eswriter",
		fn:    "Writer.bulk",
		edits: []edit{{old: "\t\tcase missingPipeline(r):\n", new: "\t\tcase missingPipeline(r) && false:\n"}},
		tests: []target{{"./internal/transfer/eswriter", "^TestMissingIngestPipelineHeldNotDeadLettered$"}},
	},
	{
		name:  "an idle agent collects once before returning memory (idle tailers keep half the stack their burst grew)",
		pkg:   "internal/platform/memtune",
		fn:    "maxShrinks",
		edits: []edit{{old: "const maxShrinks = 4\n", new: "const maxShrinks = 0\n"}},
		tests: []target{{"./internal/platform/memtune", "^TestReleaseShrinksParkedStacks$"}},
	},
	{
		name: "tailers open their files all at once (a thread per blocked open(2), kept for good)",
		pkg:  "internal/agent/tailer",
		fn:   "Tailer.next",
		edits: []edit{
			{old: "if o := t.cfg.Opens; o != nil {\n\t\tselect {", new: "if o := t.cfg.Opens; o != nil && false {\n\t\tselect {"},
			{old: "if o := t.cfg.Opens; o != nil {\n\t\t<-o", new: "if o := t.cfg.Opens; o != nil && false {\n\t\t<-o"},
		},
		tests: []target{{"./internal/agent/tailer", "^TestOpenWaitsForASlot$"}},
	},
	{
		name:  "each quiet file polls on its own clock (a thousand wake-ups of the process where one would do)",
		pkg:   "internal/agent/tailer",
		fn:    "coalesce",
		edits: []edit{{old: "\tif d < time.Second {\n\t\treturn d\n\t}", new: "\tif d < time.Hour {\n\t\treturn d\n\t}"}},
		tests: []target{{"./internal/agent/tailer", "^TestSafetyNetPollsCoalesce$"}},
	},
	{
		name:  "an idle agent releases memory once per quiet spell (stacks a safety-net poll grew back stay grown)",
		pkg:   "internal/platform/memtune",
		fn:    "Governor.Run",
		edits: []edit{{old: "case idle && now.Sub(released) >= regrowEvery:", new: "case idle && now.Sub(released) >= regrowEvery && false:"}},
		tests: []target{{"./internal/platform/memtune", "^TestIdleReleasesAgainWhenStacksRegrow$"}},
	},
	{
		name:  "an idle agent releases whenever the stacks grew at all (collections every 30 s for a few goroutines)",
		pkg:   "internal/platform/memtune",
		fn:    "regrown",
		edits: []edit{{old: "return now > after+1<<20 && now > after+after/4", new: "return now > after"}},
		tests: []target{{"./internal/platform/memtune", "^TestIdleReleasesAgainWhenStacksRegrow$"}},
	},
	{
		name: "a frame on an idle tailer's parked stack grows by 1.5 KiB (the runtime can no longer shrink its 8 KiB stack)",
		pkg:  "internal/agent/tailer",
		fn:   "Tailer.idle",
		edits: []edit{{
			old: "\tt.idleTm.Reset(t.idleFor(r))\n",
			new: "\tvar scratch [64]time.Time\n\tscratch[len(t.cfg.Path)%64] = t.now()\n\tt.idleTm.Reset(t.idleFor(r) + time.Duration(scratch[len(t.cfg.Path)%64].Nanosecond()%2))\n",
		}},
		tests: []target{{"./internal/agent/collector", "^TestIdleTailerStacksShrink$"}},
	},
	{
		name:  "the inventory compares each round with the report its progress filled (an idle agent rewrites etcd every round)",
		pkg:   "internal/platform/inventory",
		fn:    "Publisher.session",
		edits: []edit{{old: "shape.Tasks = slices.Clone(r.Tasks)", new: "shape.Tasks = r.Tasks"}},
		tests: []target{{"./internal/platform/inventory", "^TestProgressDoesNotCauseWrites$"}},
	},
	{
		name:  "the consumer does not join again after a session sarama ended (a partition whose claim failed is never consumed)",
		pkg:   "internal/transfer",
		fn:    "Consumer.Run",
		edits: []edit{{old: "\t\t\tcontinue\n\t\t}\n\t\tbo.Reset()\n\t}\n\treturn nil\n", new: "\t\t\tcontinue\n\t\t}\n\t\tbo.Reset()\n\t\tif ctx.Err() == nil {\n\t\t\t<-ctx.Done()\n\t\t}\n\t}\n\treturn nil\n"}},
		tests: []target{{"./internal/transfer/transferd", "^TestUnstartedClaimIsRetried$"}},
	},
	{
		name:  "a round's documents take the sequence numbers of its first records (a record dropped by its pipeline shifts the rest onto the wrong ones)",
		pkg:   "internal/transfer",
		fn:    "Consumer.ConsumeClaim",
		edits: []edit{{old: "d.Seq = first + st.pos[i]", new: "d.Seq = first + uint64(i)"}},
		tests: []target{{"./internal/transfer", "^TestDroppedRecordInARoundKeepsTheOthersInPlace$"}},
	},
	{
		name:  "a request's answer acknowledges only the first document of each partition's run",
		pkg:   "internal/transfer/eswriter",
		fn:    "ackAll",
		edits: []edit{{old: "\t\t\tfor _, d := range docs[i:j] {\n\t\t\t\tseqs = append(seqs, d.Seq)", new: "\t\t\tfor _, d := range docs[i : i+1] {\n\t\t\t\tseqs = append(seqs, d.Seq)"}},
		tests: []target{{"./internal/transfer/eswriter", "^TestAcksReachEveryPartitionsTracker$"}},
	},
	{
		name:  "a request's answer takes its documents for one partition's (the others' trackers never hear of them)",
		pkg:   "internal/transfer/eswriter",
		fn:    "ackAll",
		edits: []edit{{old: "for j < len(docs) && docs[j].Acker == a {", new: "for j < len(docs) {"}},
		tests: []target{{"./internal/transfer/eswriter", "^TestAcksReachEveryPartitionsTracker$"}},
	},
	{
		name:  "the transfer's memory limit ignores the live heap (a live heap near it collects over and over)",
		pkg:   "internal/platform/memtune",
		fn:    "Floor.next",
		edits: []edit{{old: "w := max(f.Limit, int64(live)*f.Ratio)", new: "w := f.Limit"}},
		tests: []target{{"./internal/platform/memtune", "^TestFloor"}},
	},
	{
		name:  "a save raises a fast stream's stamp limit by the bytes since the last save, not by its rate (a save just after another leaves it waiting for an fsync every 50 ms)",
		pkg:   "internal/agent/registry",
		fn:    "stamps.ahead",
		edits: []edit{{old: "return max(stampMinAhead, st.traffic(now))", new: "return max(stampMinAhead, st.hw-st.snapHW)"}},
		tests: []target{{"./internal/agent/registry", "^TestFastStreamWaitsForNoSaveInSteadyState$"}},
	},
	{
		name:  "an idle agent keeps the pages of its executable that starting up touched (most of its 20 MB)",
		pkg:   "internal/platform/memtune",
		fn:    "release",
		edits: []edit{{old: "\t_, _ = dropBinaryPages() // best effort: an old kernel keeps them\n", new: ""}},
		tests: []target{{"./internal/platform/memtune", "^TestReleaseDropsBinaryPages$"}},
	},
	{
		name:  "the executable's pages are advised but not paged out",
		pkg:   "internal/platform/memtune",
		fn:    "dropBinaryPages",
		edits: []edit{{old: "if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), madvPageout); errno != 0 {", new: "if errno := syscall.Errno(0); errno != 0 {"}},
		tests: []target{{"./internal/platform/memtune", "^TestDropBinaryPagesShrinksResidentFileMemory$"}},
	},
	{
		name:  "the transfer indexes a signed record that claims another host than its key's",
		pkg:   "internal/platform/keyring",
		fn:    "Ring.Check",
		edits: []edit{{old: "case (len(v.HostIP) > 0 || len(v.HostName) > 0) && (string(v.HostIP) != k.ip || string(v.HostName) != k.host):", new: "case false:"}},
		tests: []target{{"./internal/platform/keyring", "^TestRingIndexesOnlyWhatTheClaimedHostSigned$"}, {"./internal/transfer", "^TestGateIndexesWhatTheClaimedHostSignedWhole$"}},
	},
	{
		name:  "accept_unsigned lets an unsigned record claim the IP of an agent that signs",
		pkg:   "internal/platform/keyring",
		fn:    "Ring.unsigned",
		edits: []edit{{old: "\tcase st.hosts[string(v.HostIP)]:\n", new: "\tcase false:\n"}},
		tests: []target{{"./internal/platform/keyring", "^TestRingIndexesOnlyWhatTheClaimedHostSigned$"}},
	},
	{
		name:  "a record naming a key the watch has not brought yet is quarantined without asking etcd",
		pkg:   "internal/platform/keyring",
		fn:    "Ring.verify",
		edits: []edit{{old: "\t\tif !r.sync(ctx, round) {\n\t\t\treturn \"\", nil, false\n\t\t}\n", new: ""}},
		tests: []target{{"./internal/platform/keyring", "^TestRingReadsEtcdForAKeyNotSeenYet$"}},
	},
	{
		name:  "a signature does not cover a record's own headers (event id, index.time)",
		pkg:   "internal/contract/record",
		fn:    "Chunk.Add",
		edits: []edit{{old: "\t\t\tb = append(b, hd.Key...)\n\t\t\tb = appendBytes(b, hd.Value)\n", new: ""}},
		tests: []target{{"./internal/contract/record", "^TestSignatureCoversTheChunk$"}},
	},
	{
		name:  "a chunk's later records are not checked to repeat its context (host, fields)",
		pkg:   "internal/contract/record",
		fn:    "Chunk.Add",
		edits: []edit{{old: "} else if p := c.hdrs[seen]; !bytes.Equal(p.Key, h.Key) || !bytes.Equal(p.Value, h.Value) {", new: "} else if p := c.hdrs[seen]; p == nil {"}},
		tests: []target{{"./internal/contract/record", "^TestChunkRecordsShareTheirContext$"}},
	},
	{
		name:  "a commit can fall inside a chunk (the next owner sees it cut, and quarantines the agent's lines)",
		pkg:   "internal/transfer",
		fn:    "Consumer.judge",
		edits: []edit{{old: "if chunk && i < len(recs)-1 {", new: "if chunk && i < 0 {"}},
		tests: []target{{"./internal/transfer", "^TestGateIndexesWhatTheClaimedHostSignedWhole$"}},
	},
	{
		name:  "a signature is checked over every record held, not only the chunk's",
		pkg:   "internal/transfer",
		fn:    "Consumer.take",
		edits: []edit{{old: "if k := len(g.held) - (n - 1); k > 0 {", new: "if k := len(g.held) - (n - 1); k > len(g.held) {"}},
		tests: []target{{"./internal/transfer", "^TestGateIndexesWhatTheClaimedHostSignedWhole$"}},
	},
	{
		name:  "a claim that starts inside a chunk does not read its beginning (the agent's lines after the commit are quarantined)",
		pkg:   "internal/transfer",
		fn:    "Consumer.take",
		edits: []edit{{old: "\t\tg.held = append(b, g.held...)\n", new: "\t\t_ = b\n"}},
		tests: []target{{"./internal/transfer", "^TestChunkBeginningIsReadOrNothingIsJudged$"}, {"./internal/transfer/transferd", "^TestClaimStartingInsideAChunkReadsItsBeginning$"}},
	},
	{
		name:  "the transfer holds any number of bytes of a partition's unsigned records (a producer floods its memory)",
		pkg:   "internal/transfer",
		fn:    "Consumer.take",
		edits: []edit{{old: "n >= record.MaxChunk || b > record.MaxChunkBytes && n > 1;", new: "n >= record.MaxChunk || b > record.MaxChunkBytes<<20 && n > 1;"}},
		tests: []target{{"./internal/transfer", "^TestGateIndexesWhatTheClaimedHostSignedWhole$"}},
	},
	{
		name:  "held records wait heldMax from the first held, not from the last record come (a chunk delivered slowly is cut)",
		pkg:   "internal/transfer",
		fn:    "heldClock.reset",
		edits: []edit{{old: "func (h *heldClock) reset() { h.quiet = 0 }", new: "func (h *heldClock) reset() {}"}},
		tests: []target{{"./internal/transfer", "^TestHeldRecordsWaitForTheirChunkWhateverTheTiming$"}},
	},
	{
		name:  "held records are judged alone after one wait with nothing come (the rest of a chunk, still in the feeder, is quarantined)",
		pkg:   "internal/transfer",
		fn:    "heldClock.expired",
		edits: []edit{{old: "\th.quiet += heldWait\n\treturn h.quiet >= heldMax\n", new: "\th.quiet += heldWait\n\treturn true\n"}},
		tests: []target{{"./internal/transfer", "^TestHeldRecordsWaitForTheirChunkWhateverTheTiming$"}},
	},
	{
		name:  "a rotated or deleted file's unterminated last line is never sent",
		pkg:   "internal/agent/tailer",
		fn:    "reader.finish",
		edits: []edit{{old: "\tif len(r.carry) > 0 {\n", new: "\tif len(r.carry) > 0 && r == nil {\n"}},
		tests: []target{{"./internal/agent/agentsim", "^TestAgentFilePathFound$"}},
	},
	{
		name:  "a multiline event takes one line more than max_lines",
		pkg:   "internal/agent/tailer",
		fn:    "joiner.add",
		edits: []edit{{old: "fits := j.lines < j.maxLines &&", new: "fits := j.lines <= j.maxLines &&"}},
		tests: []target{{"./internal/agent/tailer", "^TestMultilineEventsAreExactlyTheirLines$"}, {"./internal/agent/agentsim", "^TestAgentFilePathFound$/past_max_lines"}},
	},
	{
		name:  "host metrics documents count as the agent's activity (an agent whose files are quiet keeps its busy heap)",
		pkg:   "internal/agent/producer",
		fn:    "engine.send",
		edits: []edit{{old: "e.p.m.sentN.Add(uint64(set.activity()))", new: "e.p.m.sentN.Add(uint64(n))"}},
		tests: []target{{"./internal/agent/producer", "^TestBackgroundBatchesAreNotActivity$"}},
	},
	{
		name:  "a multiline event grows past max_bytes",
		pkg:   "internal/agent/tailer",
		fn:    "joiner.add",
		edits: []edit{{old: "fits := j.lines < j.maxLines && len(j.buf)+1+len(line) <= j.maxBytes", new: "fits := j.lines < j.maxLines"}},
		tests: []target{{"./internal/agent/tailer", "^TestMultilineEventsAreExactlyTheirLines$"}, {"./internal/agent/agentsim", "^TestAgentFilePathFound$/past_max_bytes"}},
	},
	{
		name:  "a joined event ends where its first line ends (the registry stops short of its continuation lines, sent again after a restart)",
		pkg:   "internal/agent/tailer",
		fn:    "joiner.add",
		edits: []edit{{old: "\t\t\tj.end = end\n", new: ""}},
		tests: []target{{"./internal/agent/agentsim", "^TestAgentFilePathFound$/last_in_its_file"}},
	},
	{
		name:  "a line that starts an event is joined to the one before it",
		pkg:   "internal/agent/tailer",
		fn:    "joiner.add",
		edits: []edit{{old: "if !j.re.Match(line) && fits {", new: "if fits {"}},
		tests: []target{{"./internal/agent/tailer", "^TestMultilineEventsAreExactlyTheirLines$"}, {"./internal/agent/agentsim", "^TestAgentFilePathFound$/start_events"}},
	},
	{
		name:  "a joined event's offset is past its first line's start (its event id and log.offset point elsewhere)",
		pkg:   "internal/agent/tailer",
		fn:    "joiner.add",
		edits: []edit{{old: "j.start, j.end, j.lines, j.last = start, end, 1, now", new: "j.start, j.end, j.lines, j.last = start+1, end, 1, now"}},
		tests: []target{{"./internal/agent/tailer", "^TestMultilineEventsAreExactlyTheirLines$"}},
	},
	{
		name:  "a pending multiline event is sent after half its timeout (an event whose lines come slowly is cut)",
		pkg:   "internal/agent/tailer",
		fn:    "joiner.expired",
		edits: []edit{{old: "now.Sub(j.last) >= j.timeout", new: "now.Sub(j.last) >= j.timeout/2"}},
		tests: []target{{"./internal/agent/tailer", "^TestMultilineEventsAreExactlyTheirLines$"}},
	},
	{
		name:  "a rotation skipped unseen whose file took the inode number of another path's deleted file is skipped as known (its lines are lost)",
		pkg:   "internal/agent/tailer",
		fn:    "Tailer.recoverSkipped",
		edits: []edit{{old: "|| t.reg.Has(k) && !stale {", new: "|| t.reg.Has(k) && (!stale || true) {"}},
		tests: []target{{"./internal/agent/tailer", "^TestSkippedRotationWithAnotherPathsInodeIsRead$"}},
	},
	{
		name:  "a file truncated while its lines are in flight is read again from what Kafka acknowledged, in its copy (the lines in flight go out twice)",
		pkg:   "internal/agent/registry",
		fn:    "Handle.Resume",
		edits: []edit{{old: "\t_, read, _ := h.s.offsets()\n\treturn read\n", new: "\tacked, _, _ := h.s.offsets()\n\treturn acked\n"}},
		tests: []target{{"./internal/agent/tailer", "^TestCopyTruncateWhileLinesInFlight$"}},
	},
	{
		name: "a stopping agent does not wait for its requests in flight (their lines, written by Kafka after it exited, come again after the restart)",
		pkg:  "internal/agent/producer",
		fn:   "Producer.Run",
		edits: []edit{{old: "for p.inflight.Load() > 0 && time.Now().Before(deadline) {", new: "for false && p.inflight.Load() > 0 && time.Now().Before(deadline) {"},
			{old: "p.log.WithField(\"inflight\", n).Warn(\"shutdown timeout: in-flight events not acknowledged; they will be read again after restart\")", new: "_ = n"}},
		tests: []target{{"./cmd/logagent", "^TestSIGTERMFlushesAndResumesExactly$"}},
	},
	{
		name:  "a watch refused as compacted resumes from the compaction instead of getting everything again (changes made while it was broken are missed)",
		pkg:   "internal/platform/confwatch",
		fn:    "Watcher.watch",
		edits: []edit{{old: "\t\t\treturn fmt.Errorf(\"%w at %d\", errCompacted, resp.CompactRevision)\n", new: "\t\t\tsnap.Revision = resp.CompactRevision - 1\n\t\t\treturn w.watch(ctx, snap)\n"}},
		tests: []target{{"./internal/platform/confwatch", "^TestWatchBrokenWhileRunningCatchesUpAfterCompaction$"}},
	},
	{
		name:  "a claim that ends while it reads a chunk's beginning judges the chunk from what it read (a genuine chunk quarantined)",
		pkg:   "internal/transfer",
		fn:    "Consumer.beginning",
		edits: []edit{{old: "\tif ctx.Err() != nil {\n\t\treturn nil, false\n\t}\n", new: ""}, {old: "\t\tcase <-ctx.Done():\n\t\t\treturn nil, false\n", new: "\t\tcase <-ctx.Done():\n\t\t\treturn out, true\n"}},
		tests: []target{{"./internal/transfer", "^TestChunkBeginningIsReadOrNothingIsJudged$"}},
	},
	{
		name:  "a wait that ended late (the process stalled) counts towards heldMax",
		pkg:   "internal/transfer",
		fn:    "heldClock.expired",
		edits: []edit{{old: "if now.Sub(h.armed) > heldWait+heldLate {", new: "if now.Sub(h.armed) > heldWait+heldLate+time.Hour<<10 {"}},
		tests: []target{{"./internal/transfer", "^TestHeldClockCountsOnlyWaitsThisProcessRan$"}},
	},
	{
		name: "a rotated file truncated and written again while the agent did not look is read on from its old offset (its new lines are lost)",
		pkg:  "internal/agent/tailer",
		fn:   "Tailer.recoverRotated",
		// Its drainer checks the generation again (since a config change
		// can stop a task mid-way): both checks go.
		edits: []edit{{old: "\t\tcase !same:\n", new: "\t\tcase !same && false:\n"},
			{fn: "Tailer.drain", old: "\t\t\tif same, err = r.unchanged(); err != nil {", new: "\t\t\tif _, err = r.unchanged(); err != nil {"}},
		tests: []target{{"./internal/agent/agentsim", "^TestAgentFilePathFound$"}},
	},
	{
		name:  "a new path's file that took the inode number of another path's deleted file takes its stream as its own (read as truncated, the copy's rest goes out twice)",
		pkg:   "internal/agent/tailer",
		fn:    "Tailer.position",
		edits: []edit{{old: "\t\tif t.reg.SetAside(key, t.cfg.Path) {", new: "\t\tif false && t.reg.SetAside(key, t.cfg.Path) {"}},
		tests: []target{{"./internal/agent/agentsim", "^TestAgentFilePathFound$"}},
	},
	{
		name:  "a stream set aside for another path's file is kept as long as that file exists (never dropped)",
		pkg:   "internal/agent/registry",
		fn:    "Registry.Prune",
		edits: []edit{{old: "if c.k.Orphan != 0 || !r.exists(c.path, c.k) {", new: "if !r.exists(c.path, c.k) {"}},
		tests: []target{{"./internal/agent/registry", "^TestSetAsideKeepsTheStreamForItsPath$"}},
	},
	{
		name:  "a copy whose inode number a deleted file's registry entry still holds is not registered (read again from that entry's offset)",
		pkg:   "internal/agent/tailer",
		fn:    "Tailer.registerCopy",
		edits: []edit{{old: "\tdefer h.Release()\n", new: "\tdefer h.Release()\n\tif h.Known() {\n\t\treturn nil\n\t}\n"}},
		tests: []target{{"./internal/agent/agentsim", "^TestAgentFilePathFound$"}},
	},
	{
		name:  "a copy of the file a tailer reads is read from its start by the search for skipped rotations (its lines go out twice)",
		pkg:   "internal/agent/tailer",
		fn:    "Tailer.readCopy",
		edits: []edit{{old: "range t.reg.OfPath(t.cfg.Source.Topic, t.cfg.Path) {", new: "range t.reg.Rotated(t.cfg.Source.Topic, t.cfg.Path, current) {"}},
		tests: []target{{"./internal/agent/agentsim", "^TestAgentFilePathFound$"}},
	},
	{
		name:  "a file of another path that took the inode number of a file this path had is read as this path's rotated file (its lines go out twice)",
		pkg:   "internal/agent/tailer",
		fn:    "Tailer.recoverRotated",
		edits: []edit{{old: "!e.Type().IsRegular() || e.Name() != base && !rotatedName(base, e.Name()) {", new: "!e.Type().IsRegular() || base == \"\" {"}},
		tests: []target{{"./internal/agent/tailer", "^TestAnInodeTakenByAnotherFileIsNotReadAsItsOldEntry$"}},
	},
	{
		name:  "a copytruncate copy that took the inode number of a rotated file this path had is read from its start as that file (its lines go out twice)",
		pkg:   "internal/agent/tailer",
		fn:    "Tailer.recoverRotated",
		edits: []edit{{old: "if (n == 0 || err == nil && !own) && t.readCopy(", new: "if (n == 0 || err == nil && own && !own) && t.readCopy("}},
		tests: []target{{"./internal/agent/tailer", "^TestAnInodeTakenByAnotherFileIsNotReadAsItsOldEntry$"}},
	},
	{
		name:  "a rotated file's entry with no fingerprint (its file was empty) takes a copytruncate copy that reused its inode number for its own file (its lines go out twice)",
		pkg:   "internal/agent/tailer",
		fn:    "Tailer.recoverRotated",
		edits: []edit{{old: "if (n == 0 || err == nil && !own) && t.readCopy(", new: "if (n < 0 || err == nil && !own) && t.readCopy("}},
		tests: []target{{"./internal/agent/agentsim", "^TestAgentFilePathFound$"}},
	},
	{
		name:  "a path's new tail task (after a config change) looks for files rotated past it only since the last run's registry was written (a rotation the old task did not see is lost)",
		pkg:   "internal/agent/tailer",
		fn:    "Tailer.position",
		edits: []edit{{old: "since := t.reg.FollowedSince(t.cfg.Path)", new: "since := t.reg.Written()"}},
		tests: []target{{"./internal/agent/agentsim", "^TestAgentFilePathFound$"}},
	},
	{
		name:  "a drainer whose deleted file was copied and truncated stops without reading the rest from the copy (those lines are lost)",
		pkg:   "internal/agent/tailer",
		fn:    "Tailer.drain",
		edits: []edit{{old: "if err := t.regenerate(ctx, r, t.now()); err != nil {", new: "if err := error(context.Canceled); err != nil {"}},
		tests: []target{{"./internal/agent/agentsim", "^TestAgentFilePathFound$"}},
	},
	{
		name:  "a drainer reads on from its offset in a file truncated and written again (the new content is sent cut at the old offset)",
		pkg:   "internal/agent/tailer",
		fn:    "Tailer.drain",
		edits: []edit{{old: "\t\t\tif same, err = r.unchanged(); err != nil {", new: "\t\t\tif _, err = r.unchanged(); err != nil {"}},
		tests: []target{{"./internal/agent/agentsim", "^TestAgentFilePathFound$"}},
	},
	{
		name:  "a file truncated and written again to exactly the offset read is taken as unchanged (its new lines are never read)",
		pkg:   "internal/agent/tailer",
		fn:    "Tailer.step",
		edits: []edit{{old: "\t} else if !same {\n\t\tif err := t.truncated(r); err != nil {", new: "\t} else if !same && false {\n\t\tif err := t.truncated(r); err != nil {"}},
		tests: []target{{"./internal/agent/tailer", "^TestRefilledToItsOffsetIsDetected$"}, {"./internal/agent/agentsim", "^TestAgentFilePathFound$"}},
	},
	{
		name:  "a drainer takes a rotated file truncated and written again to exactly its offset as unchanged",
		pkg:   "internal/agent/tailer",
		fn:    "Tailer.drain",
		edits: []edit{{old: "\t\tif same {\n\t\t\t// Read on from pos", new: "\t\tif same && false {\n\t\t\t// Read on from pos"}},
		tests: []target{{"./internal/agent/tailer", "^TestRotatedFileRefilledToItsOffsetIsDetected$"}},
	},
	{
		name:  "a symlink that leads outside the allowlist is opened before it is refused",
		pkg:   "internal/platform/pathguard",
		fn:    "Guard.Open",
		edits: []edit{{old: "\tif g != nil {\n\t\tif real, err := filepath.EvalSymlinks(path)", new: "\tif g != nil && false {\n\t\tif real, err := filepath.EvalSymlinks(path)"}},
		tests: []target{{"./internal/platform/pathguard", "^TestOpenDoesNotTouchWhatASymlinkLeadsOutTo$"}, {"./internal/agent/agentsim", "^TestAgentFilePath$"}},
	},
	{
		name:  "the agent's signature leaves out a record of its chunk",
		pkg:   "internal/agent/producer",
		fn:    "Producer.sign",
		edits: []edit{{old: "\tfor i := range recs {\n\t\tp.chunk.Add(recs[i].Key, recs[i].Value, kafka.Headers(recs[i].Headers))\n", new: "\tfor i := range recs[1:] {\n\t\tp.chunk.Add(recs[i].Key, recs[i].Value, kafka.Headers(recs[i].Headers))\n"}},
		tests: []target{{"./internal/agent/producer", "^TestEveryChunkIsSignedWhole$"}},
	},
	{
		name:  "the agent's side links the transfer's (the layout's first rule)",
		pkg:   "internal/agent/registry",
		fn:    "file:registry.go",
		edits: []edit{{old: "\t\"github.com/sirupsen/logrus\"\n", new: "\t\"github.com/sirupsen/logrus\"\n\t_ \"github.com/logpipe/logpipe/internal/transfer/pipeline\"\n"}},
		tests: []target{{"./internal/dev/layout", "^TestImportRules$"}},
	},
	{
		name:  "the records of a chunk whose signature fails are let through",
		pkg:   "internal/platform/keyring",
		fn:    "Ring.Check",
		edits: []edit{{old: "\t\t\tout[i] = record.Verdict{Quarantine: r.unsigned(st, v)}\n", new: "\t\t\tout[i] = record.Verdict{Quarantine: r.unsigned(st, v)[:0]}\n"}},
		tests: []target{{"./internal/transfer", "^TestGateIndexesWhatTheClaimedHostSignedWhole$"}},
	},
	{
		name:  "a leader cut off from etcd goes on acting until its session notices (Confirm trusts the session it holds)",
		pkg:   "internal/platform/election",
		fn:    "Elector.Confirm",
		edits: []edit{{old: "\tif s == nil {\n\t\treturn ErrNotLeader\n\t}\n", new: "\tif s == nil {\n\t\treturn ErrNotLeader\n\t}\n\tif s != nil {\n\t\treturn nil\n\t}\n"}},
		tests: []target{{"./internal/platform/election", "^TestOneLeaderActsAtATime$"}},
	},
	{
		name:  "retention deletes an index it did not create (no marker in its mapping, or another topic's)",
		pkg:   "internal/transfer/indexlife",
		fn:    "judge",
		edits: []edit{{old: "\tcase managedBy != eswriter.ManagedBy:\n", new: "\tcase managedBy != eswriter.ManagedBy && false:\n"}, {old: "\tcase markTopic != topic:\n", new: "\tcase markTopic != topic && false:\n"}},
		tests: []target{{"./internal/transfer/indexlife", "^TestExpiredExactlyWhenAllItHoldsIsPastRetention$"}, {"./internal/transfer/transferd", "^TestRealRetentionDeletesOnlyItsOwnExpiredIndices$"}},
	},
	{
		name:  "retention deletes an index a day early (events still within the retention go)",
		pkg:   "internal/transfer/indexlife",
		fn:    "judge",
		edits: []edit{{old: "AddDate(0, 0, days)", new: "AddDate(0, 0, days-1)"}},
		tests: []target{{"./internal/transfer/indexlife", "^TestExpiredExactlyWhenAllItHoldsIsPastRetention$"}},
	},
	{
		name:  "a signed record is placed by its Kafka timestamp, which is not signed (a copy produced again makes an index and a duplicate)",
		pkg:   "internal/transfer",
		fn:    "Consumer.placeTime",
		edits: []edit{{old: "\tif signed && !stamp.IsZero() {\n", new: "\tif false {\n"}},
		tests: []target{{"./internal/transfer", "^TestSignedRecordsArePlacedByTheirStamp$"}, {"./internal/transfer/transferd", "^TestForgedRecordsAreQuarantinedAndMakeNoIndex$"}},
	},
	{
		name:  "an invalid retention document from etcd replaces the one in force (its topics fall back to the ini's days)",
		pkg:   "internal/transfer/indexlife",
		fn:    "Overrides.Update",
		edits: []edit{{old: "\t\to.lastErr, o.errRev = err.Error(), rev\n", new: "\t\to.lastErr, o.errRev, o.doc = err.Error(), rev, nil\n"}},
		tests: []target{{"./internal/transfer/indexlife", "^TestOverridesKeepTheLastGoodDocument$"}},
	},
	{
		name:  "retention ignores the document in etcd (a changed retention needs a restart)",
		pkg:   "internal/transfer/transferd",
		fn:    "New",
		edits: []edit{{old: "\t\t\t\ts.RetentionDays = d.retOver.Days(topic, s.RetentionDays)\n", new: ""}},
		tests: []target{{"./internal/transfer/transferd", "^TestRealRetentionFollowsEtcd$"}},
	},
	{
		name:  "of a value and fields under it, the value stays whatever their ranks (a pipeline's \"host\" replaces the transfer's host object)",
		pkg:   "internal/transfer/document",
		fn:    "settle",
		edits: []edit{{old: "\t\tif l.rank >= top {", new: "\t\tif true {"}},
		tests: []target{{"./internal/transfer/document", "^TestRenderShowsItsParts$"}},
	},
	{
		name:  "documents keep dotted names (a pipeline's http.request.method beside the log object)",
		pkg:   "internal/transfer/document",
		fn:    "Parts.Render",
		edits: []edit{{old: "\tif p.RootFields || (p.More != nil && len(p.More.Parsed) > 0) {", new: "\tif p.RootFields {"}},
		tests: []target{{"./internal/transfer/document", "^TestRenderShowsItsParts$"}, {"./internal/transfer", "^TestDocumentsFollowECS$"}},
	},
	{
		name:  "host.ip is mapped keyword (no CIDR or range queries; not ECS's type)",
		pkg:   "internal/transfer/eswriter",
		fn:    "TemplateBody",
		edits: []edit{{old: `"ip": map[string]any{"type": "ip", "ignore_malformed": true}`, new: `"ip": kw`}},
		tests: []target{{"./internal/transfer", "^TestDocumentsFollowECS$"}},
	},
	{
		name:  "an agent draws a new id at every start",
		pkg:   "internal/agent",
		fn:    "loadAgentID",
		edits: []edit{{old: "\tif err == nil && validAgentID(strings.TrimSpace(string(b))) {", new: "\tif err == nil && validAgentID(strings.TrimSpace(string(b))) && b == nil {"}},
		tests: []target{{"./internal/agent", "^TestAgentIDStaysWithItsDataDirectory$"}},
	},
	{
		name:  "fields_under_root is not carried to the transfer",
		pkg:   "internal/agent/event",
		fn:    "Source.FieldsUnderRoot",
		edits: []edit{{old: "\tif !root {\n\t\treturn s\n\t}", new: "\tif root || !root {\n\t\treturn s\n\t}"}},
		tests: []target{{"./internal/agent/event", "^TestSourceNamesItsAgentAndPlacesItsFields$"}},
	},
}

func main() {
	only := flag.String("only", "", "run only the mutants whose name contains this")
	verbose := flag.Bool("v", false, "print the test output of each mutant")
	pkgs := flag.String("pkg", "", "run only the mutants of packages under this path (e.g. internal/agent)")
	with := flag.String("with", "", "instead of each mutant's own tests, run these: package:pattern[:go test args, space separated] (how many mutants a simulation kills alone)")
	jobs := flag.Int("j", 2, "mutants run at once (their tests mostly wait on clocks and servers, not on the CPU)")
	flag.Parse()
	root, err := repoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mutants:", err)
		os.Exit(2)
	}
	type result struct {
		m       mutant
		outcome string
		took    time.Duration
	}
	var extraArgs []string // go test arguments -with adds to every run
	var todo []mutant
	for _, m := range mutants {
		if *only != "" && !strings.Contains(m.name, *only) || *pkgs != "" && !strings.HasPrefix(m.pkg, *pkgs) {
			continue
		}
		if *with != "" {
			parts := strings.SplitN(*with, ":", 3)
			tg := target{pkg: parts[0]}
			if len(parts) > 1 {
				tg.run = parts[1]
			}
			if len(parts) > 2 {
				extraArgs = strings.Fields(parts[2])
			}
			m.tests = []target{tg}
		}
		todo = append(todo, m)
	}
	// Each mutant runs in a copy of its own; -j of them at once. Results
	// are printed as they come and tabled in the mutants' order.
	results := make([]result, len(todo))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(*jobs, 1))
	failed := false
	for i, m := range todo {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			start := time.Now()
			outcome, out, err := runMutant(root, m, extraArgs)
			if err != nil {
				outcome = "ERROR: " + err.Error()
			}
			took := time.Since(start).Round(time.Second)
			mu.Lock()
			defer mu.Unlock()
			if outcome != "caught" {
				failed = true
			}
			results[i] = result{m, outcome, took}
			fmt.Printf("mutant %-90s %s (%s)\n", m.name, outcome, took)
			if *verbose || outcome != "caught" {
				os.Stdout.Write(tail(out, 40))
			}
		}()
	}
	wg.Wait()
	fmt.Printf("\nMUTANTS\n%-95s %-10s %s\n", "guarantee broken on purpose", "result", "tests that must catch it (each fails)")
	for _, r := range results {
		var ts []string
		for _, tg := range r.m.tests {
			ts = append(ts, tg.pkg+" "+tg.run)
		}
		fmt.Printf("%-95s %-10s %s (%s)\n", r.m.name, r.outcome, strings.Join(ts, "; "), r.took)
	}
	if failed {
		// Repeated last: CI shows only the end of a long run.
		fmt.Println("\nNOT CAUGHT")
		for _, r := range results {
			if r.outcome != "caught" {
				fmt.Printf("%s: %s\n", r.m.name, r.outcome)
			}
		}
		fmt.Println("\nmutants: a guarantee can be broken without a test noticing (or a mutant no longer applies)")
		os.Exit(1)
	}
}

// runMutant returns "caught" when the tests failed on the mutated copy,
// "SURVIVED" when they passed.
func runMutant(root string, m mutant, args []string) (string, []byte, error) {
	dir, err := os.MkdirTemp("", "logpipe-mutant")
	if err != nil {
		return "", nil, err
	}
	defer os.RemoveAll(dir)
	if err := copyTracked(root, dir); err != nil {
		return "", nil, fmt.Errorf("copying the repository: %w", err)
	}
	// The real servers' jars are shared, not resolved again.
	if err := os.MkdirAll(filepath.Join(root, ".cache"), 0o755); err != nil {
		return "", nil, err
	}
	if err := os.Symlink(filepath.Join(root, ".cache"), filepath.Join(dir, ".cache")); err != nil {
		return "", nil, err
	}
	files, err := apply(dir, m)
	if err != nil {
		return "", nil, err
	}
	for path, src := range files {
		if err := os.WriteFile(path, src, 0o644); err != nil {
			return "", nil, err
		}
	}
	// The mutated code must build: a compile error would "catch" anything.
	vet := exec.Command("go", "vet", "./"+m.pkg)
	vet.Dir = dir
	if out, err := vet.CombinedOutput(); err != nil {
		return "", out, fmt.Errorf("mutated code does not build: %v", err)
	}
	var all []byte
	for _, tg := range m.tests {
		out, err := runTests(dir, tg, args)
		all = append(all, out...)
		if err != nil {
			return "", all, err
		}
		if !failedTest(out) {
			return "SURVIVED " + tg.pkg + " " + tg.run, all, nil
		}
	}
	return "caught", all, nil
}

// runTests runs one target in dir; it returns an error when the run says
// nothing about the guarantee (no build, no matching test).
func runTests(dir string, tg target, args []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append([]string{"test", "-count=1", "-run", tg.run, tg.pkg}, args...)...)
	cmd.Dir = dir
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	out := buf.Bytes()
	if bytes.Contains(out, []byte("[build failed]")) || bytes.Contains(out, []byte("[setup failed]")) {
		return out, fmt.Errorf("tests did not build")
	}
	if bytes.Contains(out, []byte("no tests to run")) {
		return out, fmt.Errorf("no test matches %q in %s", tg.run, tg.pkg)
	}
	if err != nil && !failedTest(out) {
		return out, fmt.Errorf("%s failed without a failing test: %v", tg.pkg, err)
	}
	return out, nil
}

// failedTest says whether a test run's output shows a test failing. A
// test binary that crashed (a nil dereference in a goroutine the mutant
// handed reused memory) failed too, though no "--- FAIL" line is printed.
func failedTest(out []byte) bool {
	if bytes.Contains(out, []byte("--- FAIL")) {
		return true
	}
	crashed := bytes.Contains(out, []byte("\npanic: ")) || bytes.HasPrefix(out, []byte("panic: ")) ||
		bytes.Contains(out, []byte("[signal SIG"))
	return crashed && bytes.Contains(out, []byte("\nFAIL\t"))
}

func copyTracked(root, dir string) error {
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if rel == "" {
			continue
		}
		src := filepath.Join(root, rel)
		fi, err := os.Lstat(src)
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted in the work tree
			}
			return err
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		dst := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := copyFile(src, dst, fi.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func repoRoot() (string, error) {
	out, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return "", fmt.Errorf("finding the repository: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func tail(b []byte, n int) []byte {
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return append(bytes.Join(lines, []byte("\n")), '\n')
}
