package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/functions/internal/dynamo"
	"github.com/kiehook/kiehook/functions/internal/metrics"
	"github.com/kiehook/kiehook/functions/internal/queue"
	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/infra/emulators"
)

const benchURL = "https://tempfile.aiquickdraw.com/f/result-7f3a9c2e.jpg"

// BenchmarkHandle is the whole callback against the in-process emulators.
func BenchmarkHandle(b *testing.B) {
	b.Run("new task", func(b *testing.B) {
		h := newHarness(b, signed())
		reqs := make([]events.LambdaFunctionURLRequest, b.N)
		for i := range reqs {
			reqs[i] = callback(b, success(fmt.Sprint("bench_new_", i), benchURL))
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			mustAnswer(b, h.handler, reqs[i], "accepted")
		}
	})
	b.Run("duplicate", func(b *testing.B) {
		h := newHarness(b, signed())
		req := callback(b, success("bench_dup", benchURL))
		mustAnswer(b, h.handler, req, "accepted")
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			mustAnswer(b, h.handler, req, "duplicate")
		}
	})
}

// noopDB answers every call at once, as a fixed DynamoDB would.
type noopDB struct {
	existing map[string]types.AttributeValue
}

func (d noopDB) PutItem(context.Context, *dynamodb.PutItemInput, ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	if d.existing != nil {
		return nil, &types.ConditionalCheckFailedException{Item: d.existing}
	}
	return &dynamodb.PutItemOutput{}, nil
}

func (noopDB) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return &dynamodb.UpdateItemOutput{}, nil
}

func (noopDB) GetItem(context.Context, *dynamodb.GetItemInput, ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	return &dynamodb.GetItemOutput{}, nil
}

func (noopDB) Query(context.Context, *dynamodb.QueryInput, ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	return &dynamodb.QueryOutput{}, nil
}

type noopSQS struct{}

func (noopSQS) SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return &sqs.SendMessageOutput{}, nil
}

// BenchmarkHandlerOwnWork is the handler's own work (parse, verify, build
// the requests) with the AWS calls replaced by no-op clients.
func BenchmarkHandlerOwnWork(b *testing.B) {
	queued := map[string]types.AttributeValue{
		"taskId": &types.AttributeValueMemberS{Value: "bench"}, "status": &types.AttributeValueMemberS{Value: "queued"},
		"code": &types.AttributeValueMemberN{Value: "200"}, "deliveries": &types.AttributeValueMemberN{Value: "1"},
	}
	for _, tt := range []struct {
		name    string
		db      noopDB
		outcome string
	}{
		{"new task", noopDB{}, "accepted"},
		{"duplicate", noopDB{existing: queued}, "duplicate"},
	} {
		b.Run(tt.name, func(b *testing.B) {
			r := &task.Receiver{Store: dynamo.New(tt.db, "tasks", dynamo.WithoutEvents), Queue: queue.New(noopSQS{}, "https://sqs/q"), TTL: time.Hour, Now: time.Now}
			h := NewHandler(r, signed(), slog.New(slog.DiscardHandler), metrics.New(io.Discard, "kiehook", time.Now), func() time.Time { return testNow })
			req := callback(b, success("bench", benchURL))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				mustAnswer(b, h, req, tt.outcome)
			}
		})
	}
}

func mustAnswer(tb testing.TB, h *Handler, req events.LambdaFunctionURLRequest, status string) {
	resp, _ := h.Handle(context.Background(), req)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Body, `{"status":"`+status+`"`) {
		tb.Fatalf("got %d %s, want %s", resp.StatusCode, resp.Body, status)
	}
}

// span is when a call began and ended.
type span struct{ start, end time.Time }

// timedDB and timedSQS note when their PutItem and SendMessage ran.
type timedDB struct {
	dynamo.Client
	last span
}

func (d *timedDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	return timed(&d.last, func() (*dynamodb.PutItemOutput, error) { return d.Client.PutItem(ctx, in, opts...) })
}

type timedSQS struct {
	queue.Sender
	last span
}

func (q *timedSQS) SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	return timed(&q.last, func() (*sqs.SendMessageOutput, error) { return q.Sender.SendMessage(ctx, in, opts...) })
}

// timed runs call and notes in last when it began and ended.
func timed[T any](last *span, call func() (T, error)) (T, error) {
	s := span{start: time.Now()}
	out, err := call()
	s.end = time.Now()
	*last = s
	return out, err
}

// BenchmarkWhereACallbackSpends traces warm new-task callbacks on the
// in-process emulators, and reports the medians of each stage: the
// handler's work before its writes (parse, verify, build), the record's
// PutItem and the message's SendMessage (run at once), and its work after
// the later of the two (the answer).
func BenchmarkWhereACallbackSpends(b *testing.B) {
	env := emulators.New(b, emulators.Options{})
	db := &timedDB{Client: env.DynamoDB}
	h := newHarnessOn(b, env, db, signed())
	send := &timedSQS{Sender: env.SQS}
	h.send.real = send
	reqs := make([]events.LambdaFunctionURLRequest, b.N)
	for i := range reqs {
		reqs[i] = callback(b, success(fmt.Sprint("bench_trace_", i), benchURL))
	}
	var before, put, sent, after, total []time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		mustAnswer(b, h.handler, reqs[i], "accepted")
		end := time.Now()
		p, s := db.last, send.last
		before = append(before, min(p.start.Sub(start), s.start.Sub(start)))
		put, sent = append(put, p.end.Sub(p.start)), append(sent, s.end.Sub(s.start))
		after = append(after, min(end.Sub(p.end), end.Sub(s.end)))
		total = append(total, end.Sub(start))
	}
	b.StopTimer()
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"parse-verify-µs", before}, {"putitem-µs", put}, {"sendmessage-µs", sent}, {"answer-µs", after}, {"total-µs", total}} {
		slices.Sort(m.d)
		b.ReportMetric(float64(m.d[len(m.d)/2].Nanoseconds())/1e3, m.name)
	}
}
