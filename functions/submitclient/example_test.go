package submitclient_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/kiehook/kiehook/functions/submitclient"
)

func ExampleClient_Submit() {
	// Your stack's submit URL and token (go run ./infra/ops urls prints
	// them); here a stand-in that answers as kiehook does.
	kiehook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"submissionId":"sub_5f0c1e2d3a4b5c6d7e8f9a0b","api":"veo","status":"accepted","attempts":0}`)
	}))
	defer kiehook.Close()

	c := submitclient.New(kiehook.URL, "your-submit-token")
	input := map[string]any{"prompt": "a cat on a skateboard", "model": "veo3"}
	sub, err := c.Submit(context.Background(), "veo", input, map[string]string{"user": "7"}, "order-1234")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(sub.Status, sub.SubmissionID)
	// Output: accepted sub_5f0c1e2d3a4b5c6d7e8f9a0b
}
