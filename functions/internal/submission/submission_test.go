package submission_test

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/kiehook/kiehook/functions/internal/submission"
)

var now = time.Unix(1764300000, 0).UTC()

func TestNewAcceptsTheContractsRequestsOnly(t *testing.T) {
	ok := `{"api":"flux-kontext","input":{"prompt":"a cat","aspectRatio":"16:9"},"labels":{"user":"7"}}`
	for _, tt := range []struct {
		name, key, body, want string
	}{
		{"a well-formed request is accepted", "order-17", ok, ""},
		{"a missing key is refused", "", ok, "Idempotency-Key"},
		{"a key with a space is refused", "order 17", ok, "Idempotency-Key"},
		{"a key of 65 characters is refused", strings.Repeat("k", 65), ok, "Idempotency-Key"},
		{"an unknown API is refused", "k", `{"api":"dalle","input":{}}`, "api"},
		{"an input that is no object is refused", "k", `{"api":"veo","input":"a cat"}`, "input must be a JSON object"},
		{"a missing input is refused", "k", `{"api":"veo"}`, "input must be a JSON object"},
		{"an input with its own callBackUrl is refused", "k", `{"api":"veo","input":{"callBackUrl":"https://x"}}`, "callBackUrl"},
		{"a bad label is refused", "k", `{"api":"veo","input":{},"labels":{"a b":"1"}}`, "labels"},
		{"the reserved label sid is refused", "k", `{"api":"veo","input":{},"labels":{"sid":"1"}}`, "sid"},
		{"an unknown field is refused", "k", `{"api":"veo","input":{},"callback":"x"}`, "body"},
		{"a body that is not JSON is refused", "k", `api=veo`, "body"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := submission.New(tt.key, []byte(tt.body), now, time.Hour)
			if tt.want == "" {
				if err != nil || s.Status != submission.Accepted || s.ID != submission.IDOf(tt.key) || !s.ExpiresAt.Equal(now.Add(time.Hour)) {
					t.Errorf("%+v %v", s, err)
				}
				return
			}
			if !errors.Is(err, submission.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func TestTheSameBodyIsTheSameSubmissionWhateverItsSpacingAndOrder(t *testing.T) {
	a, _ := submission.New("k", []byte(`{"api":"veo","input":{"prompt":"x","model":"veo3"},"labels":{"u":"1"}}`), now, time.Hour)
	b, _ := submission.New("k", []byte(`{ "labels":{"u":"1"}, "input":{"model":"veo3",  "prompt":"x"}, "api":"veo" }`), now, time.Hour)
	c, _ := submission.New("k", []byte(`{"api":"veo","input":{"prompt":"y","model":"veo3"},"labels":{"u":"1"}}`), now, time.Hour)
	if !a.Same(b.BodyHash) || a.Same(c.BodyHash) || a.ID != c.ID {
		t.Errorf("hashes %s %s %s", a.BodyHash, b.BodyHash, c.BodyHash)
	}
	if submission.IDOf("k") == submission.IDOf("k2") {
		t.Error("two keys share an id")
	}
}

func TestEveryAnswerOfThePlatformHasItsVerdict(t *testing.T) {
	for _, tt := range []struct {
		name string
		a    submission.Answer
		want submission.Verdict
	}{
		{"a task id is a created task", submission.Answer{Written: true, Code: 200, TaskID: "t1"}, submission.Created},
		{"a failure before the request was written is retried", submission.Answer{Err: errors.New("refused")}, submission.Retry},
		{"a request written and never answered is ambiguous", submission.Answer{Written: true, Err: errors.New("EOF")}, submission.Ambiguous},
		{"a success naming no task is ambiguous", submission.Answer{Written: true, Code: 200}, submission.Ambiguous},
		{"429 is retried", submission.Answer{Written: true, Code: 429}, submission.Retry},
		{"455 (maintenance) is retried", submission.Answer{Written: true, Code: 455}, submission.Retry},
		{"500 is retried", submission.Answer{Written: true, Code: 500}, submission.Retry},
		{"402 pauses the account", submission.Answer{Written: true, Code: 402}, submission.Pause},
		{"400 is refused for good", submission.Answer{Written: true, Code: 400}, submission.Refused},
		{"401 is refused for good", submission.Answer{Written: true, Code: 401}, submission.Refused},
		{"404 is refused for good", submission.Answer{Written: true, Code: 404}, submission.Refused},
		{"422 is refused for good", submission.Answer{Written: true, Code: 422}, submission.Refused},
		{"505 is refused for good", submission.Answer{Written: true, Code: 505}, submission.Refused},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := submission.Judge(tt.a); got != tt.want {
				t.Errorf("verdict %d, want %d", got, tt.want)
			}
		})
	}
}

func TestBackoffGrowsAndA429WaitsAWindow(t *testing.T) {
	for _, jitter := range []struct {
		name string
		draw func(n time.Duration) time.Duration
	}{
		{"with the least jitter", func(time.Duration) time.Duration { return 0 }},
		{"with the most jitter", func(n time.Duration) time.Duration { return n - 1 }},
		{"with random jitter", rand.N[time.Duration]},
	} {
		t.Run(jitter.name, func(t *testing.T) {
			for attempts := 1; attempts < 20; attempts++ {
				d := submission.Backoff(attempts, 500, 10*time.Second, jitter.draw)
				if d < time.Second || d > 5*time.Minute {
					t.Errorf("attempt %d waits %v", attempts, d)
				}
			}
			if d := submission.Backoff(1, 429, 10*time.Second, jitter.draw); d < 10*time.Second {
				t.Errorf("a 429 waits %v, less than the platform's window", d)
			}
		})
	}
}

func TestAnEndIsToldOnce(t *testing.T) {
	at := now
	s := submission.Submission{ID: "sub_1", Status: submission.Accepted, UpdatedAt: at}
	if s.Unannounced() {
		t.Error("an accepted submission has no end to tell")
	}
	s, _ = submission.Apply(s, submission.Claim(s.ID, "o", at))
	s, _ = submission.Apply(s, submission.MarkSubmitted(s.ID, "o", "veo_1", at))
	if !s.Unannounced() {
		t.Error("a submitted one is told")
	}
	told, ok := submission.Apply(s, submission.MarkNotified(s, at.Add(time.Minute)))
	if !ok || told.Unannounced() || !told.UpdatedAt.Equal(at) || told.Status != submission.Submitted {
		t.Errorf("told %+v, %v: notified, and otherwise as it was", told, ok)
	}
	if _, ok := submission.Apply(submission.Submission{ID: "sub_1", Status: submission.Unknown}, submission.MarkNotified(s, at)); ok {
		t.Error("a submission that moved since is not marked")
	}
}
