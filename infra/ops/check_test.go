package main

import (
	"regexp"
	"testing"
	"time"
)

func TestTwoChecksInOneSecondAreTwoTasks(t *testing.T) {
	// The task id contract: the callback refuses any other.
	taskID := regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)
	now := time.Now()
	first, second := checkTaskID(now), checkTaskID(now)
	if first == second {
		t.Errorf("two checks at %v are both task %s: the second would be a repeat of the first", now, first)
	}
	for _, id := range []string{first, second} {
		if !taskID.MatchString(id) {
			t.Errorf("%q is no task id", id)
		}
	}
}
