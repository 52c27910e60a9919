package kie

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// The contract's limits on labels: what an application puts in the
// callback URL's query to find its own identifiers again with the result.
const (
	MaxLabels     = 10
	MaxLabelName  = 64
	MaxLabelValue = 256 // bytes of UTF-8
)

// TokenParameter is the query parameter that carries the callback token;
// it is never a label.
const TokenParameter = "token"

// SubmissionParameter is the query parameter of a callback URL kiehook
// made for a submission: it names the submission, and is never
// a label.
const SubmissionParameter = "sid"

// checkLabel says why name=value cannot be a label, or nil.
func checkLabel(name, value string) error {
	switch {
	case !IsName(name, "_.-", MaxLabelName):
		return fmt.Errorf("label name %.80q must be 1-%d characters of A-Z a-z 0-9 _ . -", name, MaxLabelName)
	case len(value) > MaxLabelValue:
		return fmt.Errorf("label %s is longer than %d bytes", name, MaxLabelValue)
	case !utf8.ValidString(value):
		return fmt.Errorf("label %s is not UTF-8", name)
	}
	return nil
}

// LabelsFromQuery reads a callback URL's labels from its raw query: every
// parameter but the token, the first MaxLabels valid ones in the order
// they come, a repeated name's first value. A callback is never refused
// for its labels: what is dropped comes back, each with why, for the log.
func LabelsFromQuery(rawQuery string) (labels map[string]string, dropped []string) {
	for pair := range strings.SplitSeq(rawQuery, "&") {
		if pair == "" {
			continue
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		if rawName == TokenParameter || rawName == SubmissionParameter {
			continue // the common cases, at no cost
		}
		name, err1 := url.QueryUnescape(rawName)
		value, err2 := url.QueryUnescape(rawValue)
		switch {
		case name == TokenParameter || name == SubmissionParameter:
			continue
		case err1 != nil || err2 != nil:
			dropped = append(dropped, fmt.Sprintf("parameter %.80q is not URL-encoded", pair))
			continue
		}
		if err := checkLabel(name, value); err != nil {
			dropped = append(dropped, err.Error())
			continue
		}
		if _, seen := labels[name]; seen {
			dropped = append(dropped, "label "+name+" is repeated: the first value is kept")
			continue
		}
		if len(labels) == MaxLabels {
			dropped = append(dropped, fmt.Sprintf("label %s is past the %d kept", name, MaxLabels))
			continue
		}
		if labels == nil {
			labels = map[string]string{}
		}
		labels[name] = value
	}
	return labels, dropped
}

// SubmissionFromQuery is the submission a callback URL names (its sid),
// or "" for none or one that is not a submission id.
func SubmissionFromQuery(rawQuery string) string {
	q, _ := url.ParseQuery(rawQuery)
	if sid := q.Get(SubmissionParameter); IsSubmissionID(sid) {
		return sid
	}
	return ""
}

// CheckLabels refuses labels that the application's own code gives (a
// registration): every one must be valid, and at most MaxLabels.
func CheckLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return fmt.Errorf("at most %d labels, not %d", MaxLabels, len(labels))
	}
	var errs []error
	for name, value := range labels {
		if name == TokenParameter || name == SubmissionParameter {
			errs = append(errs, fmt.Errorf("%s is not a label name: kiehook uses it", name))
		} else if err := checkLabel(name, value); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
