// Command cost estimates what kiehook costs on AWS, from template.yaml's
// own settings (each function's memory, the reconciler's schedule, the
// alarms, secrets and keys the stack creates) and AWS's published list
// prices, and writes docs/cost.md:
//
//	go run ./infra/cost > docs/cost.md
//
// A test fails when docs/cost.md is not what the program writes, so the
// page stays true when the template changes.
package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/kiehook/kiehook/infra/yamlnode"
)

// Prices are AWS's list prices in us-east-1 (USD), as published in 2026;
// other regions differ a little.
var prices = struct {
	LambdaGBSecond, LambdaRequest                 float64 // arm64
	DynamoWrite, DynamoRead, DynamoPITRPerGBMonth float64 // on-demand, per request unit
	SQSRequest, Event, APIDestinationCall         float64
	S3Put, S3Get, S3StoragePerGBMonth             float64
	SecretMonth, SecretCall, KMSKeyMonth          float64
	AlarmMetricMonth, DashboardMonth              float64
	CustomMetricMonth, LogIngestPerGB             float64
}{
	LambdaGBSecond: 0.0000133334, LambdaRequest: 0.20 / 1e6,
	DynamoWrite: 0.625 / 1e6, DynamoRead: 0.125 / 1e6, DynamoPITRPerGBMonth: 0.20,
	SQSRequest: 0.40 / 1e6, Event: 1.00 / 1e6, APIDestinationCall: 0.20 / 1e6,
	S3Put: 0.005 / 1000, S3Get: 0.0004 / 1000, S3StoragePerGBMonth: 0.023,
	SecretMonth: 0.40, SecretCall: 0.05 / 10000, KMSKeyMonth: 1.00,
	AlarmMetricMonth: 0.10, DashboardMonth: 3.00,
	CustomMetricMonth: 0.30, LogIngestPerGB: 0.50,
}

// A task, as measured on the local stack (the load's report) and counted
// in the code: what one generation task costs kiehook.
var perTask = struct {
	Callbacks         float64 // deliveries: a few tasks come twice, Suno's three times
	CallbackSeconds   float64 // billed per delivery: a send and a conditional write
	CopierSeconds     float64 // billed per task: four 1 MiB files downloaded and stored
	Files             float64
	MiB               float64 // stored per task
	Writes, Reads     float64 // DynamoDB request units
	SQSRequests       float64 // send, receive, delete
	Events, LogKiB    float64
	S3RequestsPerFile float64 // a PutObject (files past 5 MiB: create, parts, complete, tag)
	ReaderCalls       float64 // GET /tasks per task, by the application
	ReaderSeconds     float64
	RecordKB          float64 // a stored record: four sources, four objects
}{
	Callbacks: 1.2, CallbackSeconds: 0.040, CopierSeconds: 0.400, Files: 4, MiB: 4,
	// create (queued), lease, stored (objects, 2 units), notifiedAt; the
	// copier's consistent read, the reader's read.
	Writes: 5, Reads: 2,
	SQSRequests: 3, Events: 1, LogKiB: 2,
	S3RequestsPerFile: 1,
	ReaderCalls:       1, ReaderSeconds: 0.030,
	// About 1.6 KB of names and values (its stored write takes 2 units,
	// above).
	RecordKB: 1.6,
}

// busyMetrics are the metric and outcome pairs the functions write when
// tasks flow: callbacks (6 outcomes), registrations (3), copies (5), bytes
// and latency, events put (3), reads (4).
const busyMetrics = 23

// monthSeconds is an average month.
const monthSeconds = 30.44 * 24 * 3600

// template is what the estimate reads of template.yaml.
type template struct {
	memoryMB        map[string]float64 // by function
	reconcileEvery  float64            // seconds
	alarmMetrics    int                // metrics the alarms watch, with the defaults' conditions
	secrets         int                // secrets every stack creates (not NotifyUrl's)
	kmsKeys         int                // with AlarmEmail, which the idle estimate assumes
	dashboards      int
	notifyAvailable bool
	// submitAlarmMetrics are the metrics of the alarms that come with
	// submitting, deployed with the platform's API key.
	submitAlarmMetrics int
}

func readTemplate(raw []byte) (template, error) {
	tpl, err := yamlnode.Parse(raw)
	if err != nil {
		return template{}, err
	}
	t := template{memoryMB: map[string]float64{}}
	resources := tpl.At("Resources")
	for _, name := range resources.Keys() {
		r := resources.At(name)
		switch r.At("Type").Str() {
		case "AWS::Serverless::Function":
			mb, err := strconv.ParseFloat(r.At("Properties", "MemorySize").Str(), 64)
			if err != nil {
				return template{}, fmt.Errorf("%s has no MemorySize", name)
			}
			t.memoryMB[strings.TrimSuffix(name, "Function")] = mb
		case "AWS::CloudWatch::Alarm":
			switch r.At("Condition").Str() {
			case "":
				t.alarmMetrics += max(1, countReturnless(r))
			case "UsesApiKeySecret":
				t.submitAlarmMetrics += max(1, countReturnless(r))
			}
		case "AWS::SecretsManager::Secret":
			if !r.At("Condition").OK() {
				t.secrets++
			}
		case "AWS::KMS::Key":
			t.kmsKeys++
		case "AWS::CloudWatch::Dashboard":
			t.dashboards++
		case "AWS::Events::ApiDestination":
			t.notifyAvailable = true
		}
	}
	rate := regexp.MustCompile(`^rate\((\d+) minutes?\)$`).FindStringSubmatch(resources.At("ReconcilerFunction", "Properties", "Events", "EveryMinute", "Properties", "Schedule").Str())
	if rate == nil {
		return template{}, fmt.Errorf("the reconciler's schedule is not rate(N minutes)")
	}
	minutes, _ := strconv.ParseFloat(rate[1], 64)
	t.reconcileEvery = minutes * 60
	return t, nil
}

// countReturnless counts the metrics a metric-math alarm reads (the ones
// that are not the expression it returns).
func countReturnless(alarm yamlnode.Node) int {
	n := 0
	for _, m := range alarm.At("Properties", "Metrics").Items() {
		if m.At("MetricStat").OK() {
			n++
		}
	}
	return n
}

// line is one row of a table: what, what it buys (idle lines only), how
// much, and its monthly dollars.
type line struct {
	what, buys, basis string
	usd               float64
}

func idle(t template) []line {
	runs := monthSeconds / t.reconcileEvery
	gbs := runs * 0.1 * t.memoryMB["Reconciler"] / 1024
	lines := []line{
		{"Secrets Manager", "each credential in a secret of its own, which only the function that checks it may read, rotated without a deploy",
			fmt.Sprintf("%d secrets (webhook key, callback token, read token)", t.secrets), float64(t.secrets) * prices.SecretMonth},
		{"CloudWatch alarms", "an email when a copy is given up, a function fails, callbacks are refused or a task waits too long",
			fmt.Sprintf("%d alarm metrics", t.alarmMetrics), float64(t.alarmMetrics) * prices.AlarmMetricMonth},
		{"Reconciler runs", "what a crash left half-done, and copies given up, found within a minute (with an API key, also tasks whose callback never came)",
			fmt.Sprintf("%.0f runs of about 0.1 s at %.0f MB", runs, t.memoryMB["Reconciler"]), runs*prices.LambdaRequest + gbs*prices.LambdaGBSecond},
		{"Reconciler queries", "the same runs' reads, from an index of open tasks: never a table scan", "six index queries a run", runs * 6 * prices.DynamoRead},
		{"Copy queue polling", "a copy starts within a second of its callback", "the event source mapping's long polls, about 650,000 a month", 650000 * prices.SQSRequest},
	}
	if t.kmsKeys > 0 {
		lines = append(lines, line{"KMS keys", "", fmt.Sprint(t.kmsKeys), float64(t.kmsKeys) * prices.KMSKeyMonth})
	}
	if t.dashboards > 0 {
		lines = append(lines, line{"CloudWatch dashboards", "", fmt.Sprint(t.dashboards), float64(t.dashboards) * prices.DashboardMonth})
	}
	return lines
}

// submitting is what deploying with the platform's API key adds to idle:
// the submit function and the submitter cost nothing until called.
func submitting(t template) []line {
	return []line{
		{"CloudWatch alarms", "an email when a submission fails for good, the account runs out of credits, the submit URL answers 5xx or submission messages dead-letter",
			fmt.Sprintf("%d alarm metrics", t.submitAlarmMetrics), float64(t.submitAlarmMetrics) * prices.AlarmMetricMonth},
		{"Submit queue polling", "a submission reaches the platform within a second", "the event source mapping's long polls, about 650,000 a month", 650000 * prices.SQSRequest},
	}
}

// A submission, as counted in the code: what creating one task through
// kiehook adds to the task's own cost.
var perSubmission = struct {
	SubmitSeconds, SubmitterSeconds float64 // billed: the request; the pacing, the claim, the create call
	Writes, Reads                   float64
	SQSRequests, Events             float64
}{
	SubmitSeconds: 0.030, SubmitterSeconds: 0.400,
	// create, pace slot and its redating by the answer, claim, submitted,
	// the task's pending record, notifiedAt once the event is out, the
	// callback's link; the submitter's reads of the submission, the
	// pace (twice) and the credits.
	Writes: 8, Reads: 4,
	SQSRequests: 3, Events: 1,
}

func perMillionSubmissions(t template) []line {
	const subs = 1e6
	gbs := func(fn string, seconds float64) float64 {
		return seconds * t.memoryMB[fn] / 1024 * prices.LambdaGBSecond
	}
	return []line{
		{"Submit function", "", fmt.Sprintf("1 call, %.0f ms at %.0f MB", perSubmission.SubmitSeconds*1000, t.memoryMB["Submit"]),
			subs * (prices.LambdaRequest + gbs("Submit", perSubmission.SubmitSeconds))},
		{"Submitter function", "", fmt.Sprintf("%.1f s a submission at %.0f MB, mostly the platform's answer", perSubmission.SubmitterSeconds, t.memoryMB["Submitter"]),
			subs * (prices.LambdaRequest + gbs("Submitter", perSubmission.SubmitterSeconds))},
		{"DynamoDB", "", fmt.Sprintf("%.0f write and %.0f read units a submission", perSubmission.Writes, perSubmission.Reads),
			subs * (perSubmission.Writes*prices.DynamoWrite + perSubmission.Reads*prices.DynamoRead)},
		{"SQS", "", fmt.Sprintf("%.0f requests a submission (more while it waits its turn)", perSubmission.SQSRequests), subs * perSubmission.SQSRequests * prices.SQSRequest},
		{"EventBridge", "", "1 Task Submitted event", subs * perSubmission.Events * prices.Event},
	}
}

func perMillion(t template) []line {
	const tasks = 1e6
	gbs := func(fn string, seconds float64) float64 {
		return seconds * t.memoryMB[fn] / 1024 * prices.LambdaGBSecond
	}
	files := tasks * perTask.Files
	lines := []line{
		{"Callback function", "", fmt.Sprintf("%.1f deliveries a task, %.0f ms each at %.0f MB", perTask.Callbacks, perTask.CallbackSeconds*1000, t.memoryMB["Callback"]),
			tasks * perTask.Callbacks * (prices.LambdaRequest + gbs("Callback", perTask.CallbackSeconds))},
		{"Copier function", "", fmt.Sprintf("%.1f s a task at %.0f MB (batches of 4 share an invocation)", perTask.CopierSeconds, t.memoryMB["Copier"]),
			tasks * (prices.LambdaRequest/4 + gbs("Copier", perTask.CopierSeconds))},
		{"Reader function", "", fmt.Sprintf("%.0f call a task, %.0f ms at %.0f MB", perTask.ReaderCalls, perTask.ReaderSeconds*1000, t.memoryMB["Reader"]),
			tasks * perTask.ReaderCalls * (prices.LambdaRequest + gbs("Reader", perTask.ReaderSeconds))},
		{"DynamoDB", "", fmt.Sprintf("%.0f write and %.0f read units a task", perTask.Writes, perTask.Reads), tasks * (perTask.Writes*prices.DynamoWrite + perTask.Reads*prices.DynamoRead)},
		{"SQS", "", fmt.Sprintf("%.0f requests a task", perTask.SQSRequests), tasks * perTask.SQSRequests * prices.SQSRequest},
		{"EventBridge", "", fmt.Sprintf("%.0f event a task on the custom bus", perTask.Events), tasks * perTask.Events * prices.Event},
		{"S3 requests", "", fmt.Sprintf("%.0f files a task; a put each, a GET through each link", perTask.Files), files * (perTask.S3RequestsPerFile*prices.S3Put + prices.S3Get)},
		{"S3 storage", "", fmt.Sprintf("%.0f MiB a task, per month kept", perTask.MiB), tasks * perTask.MiB / 1024 * prices.S3StoragePerGBMonth},
		{"Point-in-time recovery", "", fmt.Sprintf("%.1f KB of record a task, per month kept, restorable to any second of 35 days", perTask.RecordKB), pitrPerMillion()},
		{"Secrets Manager calls", "", fmt.Sprintf("each warm sandbox reads its secrets every 5 min: about 3 sandboxes, %d secrets", t.secrets), 3 * float64(t.secrets) * monthSeconds / 300 * prices.SecretCall},
		{"CloudWatch Logs", "", fmt.Sprintf("about %.0f KiB of logs and metrics a task", perTask.LogKiB), tasks * perTask.LogKiB / (1 << 20) * prices.LogIngestPerGB},
		// A metric costs the same whatever its volume, once it is written.
		{"CloudWatch metrics", "", fmt.Sprintf("about %d more metric and outcome pairs once tasks flow", busyMetrics), busyMetrics * prices.CustomMetricMonth},
	}
	if t.notifyAvailable {
		lines = append(lines, line{"Forwarding (NotifyUrl)", "", "one API destination call an event", tasks * perTask.Events * prices.APIDestinationCall})
	}
	return lines
}

// pitrPerMillion is what point-in-time recovery costs a month for a table
// holding a million tasks' records: it is priced by the table's size.
func pitrPerMillion() float64 {
	return 1e6 * perTask.RecordKB / (1 << 20) * prices.DynamoPITRPerGBMonth
}

func write(w io.Writer, t template) {
	table := func(lines []line, buys bool) {
		head, rule, total := "| what | basis | USD a month |", "|---|---|---:|", "| **total** | | **%.2f** |\n"
		if buys {
			head, rule, total = "| what | what it buys | basis | USD a month |", "|---|---|---|---:|", "| **total** | | | **%.2f** |\n"
		}
		fmt.Fprintln(w, head)
		fmt.Fprintln(w, rule)
		sum := 0.0
		for _, l := range lines {
			if buys {
				fmt.Fprintf(w, "| %s | %s | %s | %.2f |\n", l.what, l.buys, l.basis, l.usd)
			} else {
				fmt.Fprintf(w, "| %s | %s | %.2f |\n", l.what, l.basis, l.usd)
			}
			sum += l.usd
		}
		fmt.Fprintf(w, total, sum)
	}
	fmt.Fprint(w, `# What kiehook costs

Written by `+"`go run ./infra/cost > docs/cost.md`"+` from template.yaml's settings
and AWS's us-east-1 list prices (2026); a test fails when this page and the
template disagree. Free tiers are left out (the first million Lambda
requests, SQS requests and dashboards of a new account cost nothing), so
a small account pays less.

## Idle, per month

With a webhook key, a callback token, a read token and an AlarmEmail, and no
task at all.

`)
	table(idle(t), true)
	idleTotal := 0.0
	for _, l := range idle(t) {
		idleTotal += l.usd
	}
	fmt.Fprint(w, `
With KieApiKeySecretArn set, kiehook also polls tasks whose callback never
came (a cost per task, below) and takes submissions, which adds:

`)
	table(submitting(t), true)
	more := 0.0
	for _, l := range submitting(t) {
		more += l.usd
	}
	fmt.Fprintf(w, "\nWith submitting deployed, idle costs %.2f a month.\n", idleTotal+more)
	fmt.Fprintf(w, `
Point-in-time recovery is priced by the table's size, so an empty table
costs nothing for it; a table holding a million tasks' records adds %.2f
a month (below, per million tasks).
`, pitrPerMillion())
	fmt.Fprint(w, `
Idle pays for nothing else. The functions write a custom metric only in an
hour when it counted something (the alarms read missing data as no
breach), there is no dashboard (the metrics are under the namespace
kiehook/<stack name> in the CloudWatch console, for a dashboard of your
own), and the alarm topic has no KMS key of its own: an alarm's message is
its name and state, nothing secret.
`)
	fmt.Fprint(w, `
## Per million tasks

A task here has four result files of 1 MiB (Midjourney's), is called back
1.2 times on average, read once through the reader, and is kept a month.
The durations are what the local stack measures, rounded up for AWS's
latencies; copies of large videos cost more copier seconds and storage.

`)
	table(perMillion(t), false)
	fmt.Fprint(w, `
Storage grows with what you keep: set ObjectExpirationDays to expire the
copies, and RecordTtl to let the task records go.

## Per million submissions

What creating the tasks through kiehook (POST /submissions) adds to their
own cost above.

`)
	table(perMillionSubmissions(t), false)
}

func main() {
	if err := run(os.Stdout, "template.yaml"); err != nil {
		fmt.Fprintln(os.Stderr, "cost:", err, "(run it from the module root)")
		os.Exit(1)
	}
}

// run writes the page for the template at path.
func run(w io.Writer, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	t, err := readTemplate(raw)
	if err != nil {
		return err
	}
	write(w, t)
	return nil
}
