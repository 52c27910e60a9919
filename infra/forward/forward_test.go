package forward_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kiehook/kiehook/infra/forward"
)

func TestEveryEventReachesAnEndpointThatRefusesHalfTheCalls(t *testing.T) {
	r := forward.NewReceiver(0.5)
	defer r.Close()
	var events []forward.Event
	for i := range 20 {
		events = append(events, forward.Event{DetailType: "Task Stored", Detail: json.RawMessage(fmt.Sprintf(`{"taskId":"t%d"}`, i))})
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &forward.Forwarder{Target: r.Target}
	done := make(chan struct{})
	go func() { f.Run(ctx, func() []forward.Event { return events }); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for len(r.Details()) < len(events) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-done
	if got := len(r.Details()); got != len(events) || r.Refused.Load() == 0 || f.Retries.Load() < r.Refused.Load() {
		t.Errorf("%d of %d taken, %d refused, %d retries", got, len(events), r.Refused.Load(), f.Retries.Load())
	}
}

func TestTheReceiverRefusesACallWithoutItsHeader(t *testing.T) {
	r := forward.NewReceiver(0)
	defer r.Close()
	resp, err := http.Post(r.Target.URL, "application/json", strings.NewReader(`{"taskId":"forged"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(r.Details()) != 0 || r.Forged.Load() != 1 {
		t.Errorf("got %d, %d details", resp.StatusCode, len(r.Details()))
	}
}
