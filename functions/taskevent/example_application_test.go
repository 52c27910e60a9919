package taskevent_test

import (
	"bytes"
	"log"
	"net/http"
	"os"

	"github.com/kiehook/kiehook/functions/taskevent"
)

// An application outside AWS (on Vercel, Netlify, Supabase…) receives
// each task event forwarded to its NotifyUrl, asks the reader for download
// links, and keeps every file whose SHA-256 checks out.
func Example_applicationOutsideAWS() {
	reader := taskevent.Reader{URL: os.Getenv("KIEHOOK_READER_URL"), Token: os.Getenv("KIEHOOK_READ_TOKEN")}
	http.HandleFunc("POST /kiehook", func(w http.ResponseWriter, r *http.Request) {
		event, err := taskevent.Forwarded(r, "X-Kiehook-Token", os.Getenv("KIEHOOK_NOTIFY_VALUE"))
		if err != nil {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent) // at once: the rest may take a while
		if event.Status != "stored" {
			log.Printf("task %s of user %s ended %s: %s", event.TaskID, event.Labels["uid"], event.Status, event.Msg)
			return
		}
		task, err := reader.Task(r.Context(), event.TaskID)
		if err != nil {
			log.Print(err)
			return
		}
		for i, link := range task.Links {
			var file bytes.Buffer
			if err := taskevent.Fetch(r.Context(), nil, link, task.Objects[i], &file); err != nil {
				log.Print(err)
				return
			}
			// … store file.Bytes() for event.Labels["uid"].
		}
	})
	log.Fatal(http.ListenAndServe(":8080", nil))
}
