package copier

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/kiehook/kiehook/functions/internal/run"
	"github.com/kiehook/kiehook/functions/schema"
)

// copyMargin is kept back from the Lambda deadline so that a copy cut short
// still has time to report its message as failed.
const copyMargin = 5 * time.Second

// invocationDeadlineKey carries Lambda's own deadline past the shortened
// one, for the lease, which must outlast every write of its holder.
type invocationDeadlineKey struct{}

// invocationDeadline is when Lambda ends the invocation of ctx.
func invocationDeadline(ctx context.Context) (time.Time, bool) {
	if d, ok := ctx.Value(invocationDeadlineKey{}).(time.Time); ok {
		return d, true
	}
	return ctx.Deadline()
}

// copyFunc copies one task, for its messages d.
type copyFunc func(ctx context.Context, taskID string, d Delivery) error

// Handler turns SQS batches into copies, reporting only the failed messages.
type Handler struct {
	copy   copyFunc
	logger *slog.Logger
	// Group runs the tasks of a batch at once (nil: on goroutines).
	Group run.NewGroup
}

// NewHandler returns a Handler.
func NewHandler(copy copyFunc, logger *slog.Logger) *Handler {
	return &Handler{copy: copy, logger: logger}
}

// Handle copies every task of the batch at once: all share the
// invocation's deadline, so a copy that waited for another to finish would
// start with what is left and could fail without a real attempt, spending
// a delivery. The event source mapping's batch size bounds the copies at
// once (the template allows at most 4). The messages of one task (SQS
// delivers at least once, and the platform may call back twice) are one
// copy, and each follows its outcome: none waits out a visibility timeout
// because its twin holds the lease. One bad record never fails the others.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(context.WithValue(ctx, invocationDeadlineKey{}, deadline), deadline.Add(-copyMargin))
		defer cancel()
	}
	var (
		mu       sync.Mutex
		failures []events.SQSBatchItemFailure
	)
	fail := func(err error, recs ...events.SQSMessage) {
		level := slog.LevelError
		if errors.Is(err, ErrLeased) {
			level = slog.LevelInfo // a duplicate delivery, not a failure
		}
		mu.Lock()
		defer mu.Unlock()
		for _, rec := range recs {
			h.logger.Log(ctx, level, "copy will be retried", "messageId", rec.MessageId, "error", err.Error())
			failures = append(failures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
		}
	}
	var order []string
	byTask := map[string][]events.SQSMessage{}
	newest := map[string]schema.CopyMessage{} // the newest queueing each task's messages name
	for _, rec := range ev.Records {
		// A message that names no task is reported failed, so that it ends
		// in the dead-letter queue to be looked at.
		msg, err := schema.DecodeCopyMessage(rec.Body)
		if err != nil {
			fail(err, rec)
			continue
		}
		if byTask[msg.TaskID] == nil {
			order = append(order, msg.TaskID)
		}
		byTask[msg.TaskID] = append(byTask[msg.TaskID], rec)
		if n := newest[msg.TaskID]; msg.Generation > n.Generation || msg.Generation == n.Generation && msg.Requeue {
			newest[msg.TaskID] = msg
		}
	}
	wg := h.Group.Or()
	for _, id := range order {
		recs := byTask[id]
		wg.Go(func() {
			d := delivery(recs)
			d.Generation, d.Requeue = newest[id].Generation, newest[id].Requeue
			if err := h.copy(ctx, id, d); err != nil {
				fail(err, recs...)
			}
		})
	}
	wg.Wait()
	return events.SQSEventResponse{BatchItemFailures: failures}, nil
}

// delivery is what the messages of one task say: their ids, the most
// deliveries any has had, and when the earliest was sent. Lambda's SQS events always
// carry both; a message without them counts as a first delivery, sent
// just now. (goaws, the tests' SQS, gives the time of receipt as
// SentTimestamp: later than the send, so a wait for the record is only
// longer.)
func delivery(recs []events.SQSMessage) Delivery {
	d := Delivery{Receives: 1}
	for _, rec := range recs {
		d.MessageIDs = append(d.MessageIDs, rec.MessageId)
		n, _ := strconv.Atoi(rec.Attributes["ApproximateReceiveCount"])
		d.Receives = max(d.Receives, n)
		if ms, err := strconv.ParseInt(rec.Attributes["SentTimestamp"], 10, 64); err == nil {
			if sent := time.UnixMilli(ms); d.SentAt.IsZero() || sent.Before(d.SentAt) {
				d.SentAt = sent
			}
		}
	}
	return d
}
