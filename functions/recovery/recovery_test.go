package recovery

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/functions/schema"
	"github.com/kiehook/kiehook/infra/emulators"
)

// Requeue and Redrive only read records and send messages, so the
// emulators are enough here; infra/ops tests them end to end on a local
// stack, where the copier then stores the tasks.

type harness struct {
	env *emulators.Env
	r   *Recovery
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	env := emulators.New(tb, emulators.Options{})
	res := Resources{Table: env.Table, QueueURL: env.QueueURL, DLQURL: env.DLQURL}
	return &harness{env: env, r: New(env.DynamoDB, env.SQS, res, time.Now)}
}

// seed writes the record of a task in status, leased until leaseUntil
// when it is not zero, as the functions would have left it.
func (h *harness) seed(tb testing.TB, id, status string, leaseUntil time.Time) {
	tb.Helper()
	rec := schema.Record{TaskID: id, Status: status, Code: 200, Msg: "success", API: "veo", Deliveries: 1,
		Sources: []string{"https://tempfile.aiquickdraw.com/" + id + ".png"}, UpdatedAt: "2026-11-30T00:00:00Z", ExpiresAt: 4102444800}
	if !leaseUntil.IsZero() {
		rec.LeaseOwner, rec.LeaseUntil = "copier-"+id, leaseUntil.UnixMilli()
	}
	item, err := attributevalue.MarshalMap(rec)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := h.env.DynamoDB.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: &h.env.Table, Item: item}); err != nil {
		tb.Fatal(err)
	}
}

// deadLetter puts body in the dead-letter queue.
func (h *harness) deadLetter(tb testing.TB, body string) {
	tb.Helper()
	if _, err := h.env.SQS.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: &h.env.DLQURL, MessageBody: aws.String(body)}); err != nil {
		tb.Fatal(err)
	}
}

// sent are the copy queue's messages, in task order.
func (h *harness) sent(tb testing.TB) []schema.CopyMessage {
	tb.Helper()
	var msgs []schema.CopyMessage
	for _, body := range emulators.Messages(h.env.QueueName) {
		msg, err := schema.DecodeCopyMessage(body)
		if err != nil {
			tb.Errorf("message %s: %v", body, err)
		}
		msgs = append(msgs, msg)
	}
	slices.SortFunc(msgs, func(a, b schema.CopyMessage) int { return strings.Compare(a.TaskID, b.TaskID) })
	return msgs
}

func TestRequeueAsksTheCopierAndChangesNoRecord(t *testing.T) {
	h := newHarness(t)
	h.seed(t, "rq_failed", schema.CopyFailed, time.Time{})
	h.seed(t, "rq_queued", schema.Queued, time.Now().Add(-time.Minute)) // its copier's lease has expired
	for _, id := range []string{"rq_failed", "rq_queued"} {
		if err := h.r.Requeue(context.Background(), id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	want := []schema.CopyMessage{{TaskID: "rq_failed", Generation: 1, Requeue: true}, {TaskID: "rq_queued"}}
	if msgs := h.sent(t); !slices.Equal(msgs, want) {
		t.Errorf("sent %+v, want a request to begin the next queueing of the copy_failed task, and a copy message of the queued one", msgs)
	}
	if rec, _, err := h.r.Records.Get(context.Background(), "rq_failed"); err != nil || rec.Status != schema.CopyFailed {
		t.Errorf("the record is %s (%v): the copier, not recovery, moves it", rec.Status, err)
	}
}

func TestRequeueRefusesWhatItCannotRequeue(t *testing.T) {
	h := newHarness(t)
	h.seed(t, "rq_held", schema.Queued, time.Now().Add(time.Hour))
	h.seed(t, "rq_stored", schema.Stored, time.Time{})
	h.seed(t, "rq_done_failed", schema.Failed, time.Time{})
	h.seed(t, "rq_pending", schema.Pending, time.Time{})
	for _, tt := range []struct{ name, id, want string }{
		{"a task a copier holds is not reset under it", "rq_held", "a copier holds it"},
		{"a stored task has nothing to requeue", "rq_stored", ErrEnded.Error()},
		{"a failed task has nothing to requeue", "rq_done_failed", ErrEnded.Error()},
		{"a pending task is refused, naming its status", "rq_pending", "is pending: only copy_failed and queued tasks are requeued"},
		{"an unknown task is refused", "rq_nobody", "no record"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := h.r.Requeue(context.Background(), tt.id)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
			if ended := errors.Is(err, ErrEnded); ended != (tt.want == ErrEnded.Error()) {
				t.Errorf("errors.Is(%v, ErrEnded) = %v", err, ended)
			}
		})
	}
	if ids := h.sent(t); len(ids) != 0 {
		t.Errorf("sent %v", ids)
	}
}

func TestRedriveMovesWhatItCanDropsWhatNeverCanAndKeepsTheRest(t *testing.T) {
	h := newHarness(t)
	h.seed(t, "rd_failed", schema.CopyFailed, time.Time{})
	h.seed(t, "rd_stored", schema.Stored, time.Time{})
	h.seed(t, "rd_held", schema.Queued, time.Now().Add(time.Hour))
	h.seed(t, "rd_pending", schema.Pending, time.Time{})
	h.seed(t, "rd_requeued", schema.Queued, time.Time{})
	if _, err := h.env.DynamoDB.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{TableName: &h.env.Table,
		Key:              map[string]types.AttributeValue{"taskId": &types.AttributeValueMemberS{Value: "rd_requeued"}},
		UpdateExpression: aws.String("SET generation = :g"), ExpressionAttributeValues: map[string]types.AttributeValue{":g": &types.AttributeValueMemberN{Value: "1"}}}); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{`{"taskId":"rd_failed"}`, `{"taskId":"rd_stored"}`, `{"taskId":"rd_held"}`, `{"taskId":"rd_gone"}`,
		`{"taskId":"rd_pending"}`, `{"taskId":"rd_requeued"}`, "not a copy message"} {
		h.deadLetter(t, body)
	}
	letters, unseen, err := h.r.Redrive(context.Background())
	if unseen != 0 {
		t.Errorf("%d letters unseen", unseen)
	}
	if err != nil {
		t.Fatal(err)
	}
	did := map[string]string{}
	for _, l := range letters {
		did[l.TaskID] = l.Action
		if l.Why == "" {
			t.Errorf("%s was %s without a reason", l.TaskID, l.Action)
		}
	}
	want := map[string]string{"rd_failed": Moved, "rd_stored": Dropped, "rd_held": Kept, "rd_gone": Dropped, "rd_pending": Dropped, "rd_requeued": Dropped}
	for id, action := range want {
		if did[id] != action {
			t.Errorf("%s was %q, want %q", id, did[id], action)
		}
	}
	if len(letters) != 7 {
		t.Errorf("said what it did with %d letters of 7: %+v", len(letters), letters)
	}
	if msgs := h.sent(t); len(msgs) != 1 || msgs[0].TaskID != "rd_failed" {
		t.Errorf("sent %+v", msgs)
	}
	left := emulators.Messages(h.env.DLQName)
	slices.Sort(left)
	if want := []string{"not a copy message", `{"taskId":"rd_held"}`}; !slices.Equal(left, want) {
		t.Errorf("the dead-letter queue keeps %q, want %q", left, want)
	}
}

func TestUpgradeMakesWhatAnEarlierReleaseLeftReceivedQueued(t *testing.T) {
	h := newHarness(t)
	h.seed(t, "old_received", schema.Received, time.Time{})
	if _, err := h.env.DynamoDB.UpdateItem(context.Background(), &dynamodb.UpdateItemInput{TableName: &h.env.Table,
		Key:              map[string]types.AttributeValue{"taskId": &types.AttributeValueMemberS{Value: "old_received"}},
		UpdateExpression: aws.String("SET openStatus = :s"), ExpressionAttributeValues: map[string]types.AttributeValue{":s": &types.AttributeValueMemberS{Value: schema.Received}}}); err != nil {
		t.Fatal(err)
	}
	if n, err := h.r.Upgrade(context.Background()); n != 1 || err != nil {
		t.Fatalf("moved %d (%v), want 1", n, err)
	}
	if rec, _, err := h.r.Records.Get(context.Background(), "old_received"); err != nil || rec.Status != schema.Queued || rec.Started() {
		t.Errorf("record %+v (%v): queued, its copy never started, so the reconciler sends its message", rec, err)
	}
	if n, err := h.r.Upgrade(context.Background()); n != 0 || err != nil {
		t.Errorf("a second upgrade moved %d (%v)", n, err)
	}
}
