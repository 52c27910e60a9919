package taskevent

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Forwarded reads the detail of a task event that kiehook's stack
// forwarded to your HTTPS endpoint (the template's NotifyUrl), once the
// header that authenticates it (NotifyHeaderName) holds value, compared in
// constant time. Delivery is at least once: dedupe on TaskID + Status.
func Forwarded(r *http.Request, header, value string) (Detail, error) {
	got := r.Header.Get(header)
	if subtle.ConstantTimeCompare([]byte(got), []byte(value)) != 1 || value == "" {
		return Detail{}, errors.New("taskevent: the forwarded call lacks the header's value")
	}
	var d Detail
	if err := json.NewDecoder(io.LimitReader(r.Body, 256<<10)).Decode(&d); err != nil {
		return Detail{}, fmt.Errorf("taskevent: forwarded detail: %w", err)
	}
	return d, nil
}

// Reader asks kiehook's reader (the stack's ReaderUrl) for tasks.
type Reader struct {
	URL   string       // the ReaderUrl output, such as https://….lambda-url.eu-west-1.on.aws/
	Token string       // ReadToken
	HTTP  *http.Client // nil: http.DefaultClient
}

// Task answers the task taskID as it is now, with download links when it
// is stored.
func (r Reader) Task(ctx context.Context, taskID string) (Task, error) {
	u, err := url.JoinPath(r.URL, "tasks", taskID)
	if err != nil {
		return Task{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Task{}, err
	}
	req.Header.Set("Authorization", "Bearer "+r.Token)
	resp, err := client(r.HTTP).Do(req)
	if err != nil {
		return Task{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&e)
		return Task{}, fmt.Errorf("taskevent: reader answered %s: %s", resp.Status, e.Error)
	}
	var t Task
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil {
		return Task{}, fmt.Errorf("taskevent: reader's answer: %w", err)
	}
	return t, nil
}

// Fetch downloads the object o through its link into w, and checks that
// it has o's size and SHA-256: a file cut short or altered is an error.
func Fetch(ctx context.Context, hc *http.Client, link Link, o Object, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link.URL, nil)
	if err != nil {
		return err
	}
	resp, err := client(hc).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("taskevent: %s answered %s", link.Key, resp.Status)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), resp.Body)
	if err != nil {
		return fmt.Errorf("taskevent: %s: %w", link.Key, err)
	}
	if n != o.Bytes || hex.EncodeToString(h.Sum(nil)) != o.SHA256 {
		return fmt.Errorf("taskevent: %s: %d bytes whose SHA-256 is not the object's (%d bytes)", link.Key, n, o.Bytes)
	}
	return nil
}

func client(c *http.Client) *http.Client {
	if c == nil {
		return http.DefaultClient
	}
	return c
}
