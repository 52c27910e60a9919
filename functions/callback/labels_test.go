package main

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/kiehook/kiehook/functions/internal/task"
	"github.com/kiehook/kiehook/functions/taskevent"
)

func TestLabelsFromTheCallbackURL(t *testing.T) {
	const url = "https://tempfile.aiquickdraw.com/a.png"
	query := "token=" + testToken + "&uid=u_42&job=7"
	want := map[string]string{"uid": "u_42", "job": "7"}
	t.Run("the callback URL's parameters but the token become the task's labels", func(t *testing.T) {
		h := newHarness(t, signed())
		if status, a := h.call(t, withQuery(callback(t, success("lab_1", url)), query)); status != 200 || a.Status != "accepted" {
			t.Fatalf("got %d %+v", status, a)
		}
		if got := h.record(t, "lab_1").Labels; !maps.Equal(got, want) {
			t.Errorf("labels %v", got)
		}
	})
	t.Run("invalid labels never refuse a callback: they are dropped and logged", func(t *testing.T) {
		h := newHarness(t, signed())
		req := withQuery(callback(t, success("lab_2", url)), query+"&bad%20name=x&v="+strings.Repeat("x", 300))
		if status, _ := h.call(t, req); status != 200 {
			t.Fatalf("got %d", status)
		}
		if got := h.record(t, "lab_2").Labels; !maps.Equal(got, want) {
			t.Errorf("labels %v", got)
		}
		if !strings.Contains(h.logs.String(), "labels dropped") {
			t.Errorf("log %s", h.logs.String())
		}
	})
	t.Run("the first request that brings labels sets them; later ones change nothing", func(t *testing.T) {
		h := newHarness(t, signed())
		h.call(t, callback(t, success("lab_3", url)))
		h.call(t, withQuery(callback(t, success("lab_3", url)), query))
		h.call(t, withQuery(callback(t, success("lab_3", url)), "token="+testToken+"&uid=someone_else"))
		if got := h.record(t, "lab_3").Labels; !maps.Equal(got, want) {
			t.Errorf("labels %v: the second callback brought the first labels", got)
		}
	})
	t.Run("a registration's labels win over the callback's; one without leaves them to it", func(t *testing.T) {
		h := newHarness(t, signed())
		h.call(t, signedRegistration(t, `{"taskId":"lab_4","api":"veo","labels":{"uid":"u_42","job":"7"}}`))
		h.call(t, withQuery(callback(t, success("lab_4", url)), "token="+testToken+"&uid=other"))
		h.call(t, signedRegistration(t, `{"taskId":"lab_5","api":"veo"}`))
		h.call(t, withQuery(callback(t, success("lab_5", url)), query))
		for _, id := range []string{"lab_4", "lab_5"} {
			if got := h.record(t, id).Labels; !maps.Equal(got, want) {
				t.Errorf("%s labels %v", id, got)
			}
		}
	})
	t.Run("a registration with invalid labels is refused 400", func(t *testing.T) {
		h := newHarness(t, signed())
		for _, body := range []string{`{"taskId":"lab_6","api":"veo","labels":{"bad name":"x"}}`, `{"taskId":"lab_6","api":"veo","labels":{"token":"x"}}`} {
			if status, a := h.call(t, signedRegistration(t, body)); status != 400 || !strings.Contains(a.Error, "labels") {
				t.Errorf("%s: got %d %+v", body, status, a)
			}
		}
	})
	t.Run("labels travel in the task's event", func(t *testing.T) {
		h := newHarness(t, signed())
		h.call(t, withQuery(callback(t, failure("lab_7", 501)), query))
		evs := h.env.Events()
		var d taskevent.Detail
		if len(evs) != 1 || json.Unmarshal(evs[0].Detail, &d) != nil || !maps.Equal(d.Labels, want) || d.Status != string(task.StatusFailed) {
			t.Errorf("events %+v", evs)
		}
	})
}
