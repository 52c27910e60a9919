// Package emulators runs DynamoDB, SQS, S3, Secrets Manager and EventBridge
// in-process on loopback, so that tests and the local stack talk to real
// wire protocols through the official SDK. Nothing here binds outside
// 127.0.0.1.
//
// Known differences from AWS, which callers code around and never for:
//   - minidyn returns no old item when a conditional PutItem fails, and has no
//     TTL API; tables are created directly because the TableExists waiter fails.
//     An UpdateItem that gives a record an index key it lacked corrupts the
//     index; an index key that an update REMOVEs stays listed. Its REMOVE
//     deletes nothing: removeFix does it for top-level attributes.
//   - goaws keeps its queues in package globals, so one SQS server serves the
//     whole process; each Env gets queues with names of its own.
//   - gofakes3 serves plain HTTP with path-style addressing only, and keeps
//     no object tags: tagShim keeps them (PutObject's x-amz-tagging,
//     PutObjectTagging, GetObjectTagging). It does not verify checksums.
//   - No emulator package serves Secrets Manager or EventBridge: this package
//     answers GetSecretValue (no versions, stages or rotation) and PutEvents
//     (any bus name, no rules or archives: it keeps what it accepted).
package emulators

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Admiral-Piett/goaws/app/gosqs"
	"github.com/Admiral-Piett/goaws/app/models"
	"github.com/Admiral-Piett/goaws/app/servertest"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dynamotypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/sirupsen/logrus"
	"github.com/truora/minidyn/server"

	"github.com/kiehook/kiehook/functions/schema"
)

// Region is the region every emulated client claims.
const Region = "us-east-1"

// Options names the resources an Env creates. Empty names are generated.
type Options struct {
	Table  string
	Queue  string
	DLQ    string
	Bucket string
	// SubmitQueue and SubmitDLQ feed the submitter, as the template's
	// SubmitQueue and SubmitDeadLetterQueue do.
	SubmitQueue, SubmitDLQ string
	// MaxReceiveCount is the queue's redrive threshold; 0 means 3.
	MaxReceiveCount int
	// VisibilityTimeout of the main queue; 0 means 30 s.
	VisibilityTimeout time.Duration
	// DynamoDBAddr and S3Addr are where this Env's servers listen; empty
	// picks a free loopback port. SQSAddr is where the process's one SQS
	// server listens, if this Env is the first to start it.
	DynamoDBAddr, S3Addr, SQSAddr string
	// JSONAddr is where Secrets Manager and EventBridge listen.
	JSONAddr string
	// Timeline records every request DynamoDB and S3 serve (Env.Timeline).
	Timeline bool
}

// Env is one set of emulated resources and the SDK clients that reach them.
type Env struct {
	DynamoDBURL, SQSURL, S3URL string
	JSONURL                    string // Secrets Manager and EventBridge
	*jsonAPI
	Table, QueueURL, DLQURL    string
	QueueName, DLQName, Bucket string
	// The submitter's queue and its dead-letter queue.
	SubmitQueueURL, SubmitDLQURL   string
	SubmitQueueName, SubmitDLQName string
	Bus                            string // the EventBridge bus the functions put events on
	MaxReceiveCount                int    // the copy queue's redrive threshold

	DynamoDB *dynamodb.Client
	SQS      *sqs.Client
	S3       *s3.Client
	// EventBridge reaches this package's own PutEvents.
	EventBridge *eventbridge.Client

	servers  []*httptest.Server
	timeline *timeline
}

var (
	sqsOnce   sync.Once
	sqsURL    string
	sqsErr    error
	nameCount atomic.Int64
)

// sharedSQS starts the process's one goaws server and the loop that expires
// visibility timeouts and moves messages to dead-letter queues.
func sharedSQS(addr string) (string, error) {
	sqsOnce.Do(func() {
		logrus.SetLevel(logrus.ErrorLevel)
		if addr == "" {
			addr = "127.0.0.1:0"
		}
		if err := checkLoopback(addr); err != nil {
			sqsErr = err
			return
		}
		srv, err := servertest.New(addr)
		if err != nil {
			sqsErr = fmt.Errorf("start SQS emulator: %w", err)
			return
		}
		u, _ := url.Parse(srv.URL())
		// servertest records the requested port (0), not the bound one, and
		// prefixes queue URLs with the region as a subdomain unless it is empty.
		models.CurrentEnvironment.Port = u.Port()
		models.CurrentEnvironment.Region = ""
		models.CurrentEnvironment.AccountID = "000000000000"
		go gosqs.PeriodicTasks(100*time.Millisecond, make(chan bool))
		sqsURL = srv.URL()
	})
	return sqsURL, sqsErr
}

// Start starts DynamoDB and S3 servers of its own, joins the shared SQS
// server, and creates the table, queue with dead-letter queue and bucket.
// Close stops the servers and deletes the queues.
func Start(ctx context.Context, opts Options) (*Env, error) {
	n := nameCount.Add(1)
	name := func(given, kind string) string {
		if given != "" {
			return given
		}
		return fmt.Sprintf("kiehook-%s-%d-%d", kind, time.Now().UnixNano()%1e6, n)
	}
	opts.Table, opts.Queue, opts.DLQ, opts.Bucket = name(opts.Table, "tasks"), name(opts.Queue, "copy"), name(opts.DLQ, "dlq"), name(opts.Bucket, "objects")
	opts.SubmitQueue, opts.SubmitDLQ = name(opts.SubmitQueue, "submit"), name(opts.SubmitDLQ, "submit-dlq")
	if opts.MaxReceiveCount == 0 {
		opts.MaxReceiveCount = 3
	}
	if opts.VisibilityTimeout == 0 {
		opts.VisibilityTimeout = 30 * time.Second
	}

	env := &Env{
		Table: opts.Table, QueueName: opts.Queue, DLQName: opts.DLQ, Bucket: opts.Bucket, Bus: "kiehook-events", MaxReceiveCount: opts.MaxReceiveCount,
		SubmitQueueName: opts.SubmitQueue, SubmitDLQName: opts.SubmitDLQ,
	}
	var err error
	if env.SQSURL, err = sharedSQS(opts.SQSAddr); err != nil {
		return nil, err
	}
	var dynamo, s3h http.Handler = &removeFix{next: server.NewServer()}, &tagShim{next: gofakes3.New(s3mem.New()).Server()}
	if opts.Timeline {
		env.timeline = &timeline{}
		dynamo, s3h = env.timeline.record("dynamodb", dynamo), env.timeline.record("s3", s3h)
	}
	dynamoSrv, err := serve(opts.DynamoDBAddr, dynamo)
	if err != nil {
		return nil, fmt.Errorf("start DynamoDB emulator: %w", err)
	}
	env.servers = append(env.servers, dynamoSrv)
	s3Srv, err := serve(opts.S3Addr, s3h)
	if err != nil {
		env.Close()
		return nil, fmt.Errorf("start S3 emulator: %w", err)
	}
	env.servers = append(env.servers, s3Srv)
	env.jsonAPI = newJSONAPI()
	jsonSrv, err := serve(opts.JSONAddr, env.jsonAPI)
	if err != nil {
		env.Close()
		return nil, fmt.Errorf("start Secrets Manager and EventBridge emulator: %w", err)
	}
	env.servers = append(env.servers, jsonSrv)
	env.DynamoDBURL, env.S3URL, env.JSONURL = dynamoSrv.URL, s3Srv.URL, jsonSrv.URL

	cfg := Config()
	env.DynamoDB = dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(env.DynamoDBURL)
		o.DisableValidateResponseChecksum = true
	})
	env.SQS = sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(env.SQSURL) })
	env.EventBridge = eventbridge.NewFromConfig(cfg, func(o *eventbridge.Options) { o.BaseEndpoint = aws.String(env.JSONURL) })
	env.S3 = s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(env.S3URL)
		o.UsePathStyle = true
	})

	if err := env.provision(ctx, opts); err != nil {
		env.Close()
		return nil, err
	}
	return env, nil
}

func serve(addr string, h http.Handler) (*httptest.Server, error) {
	if addr == "" {
		return httptest.NewServer(h), nil
	}
	srv := httptest.NewUnstartedServer(h)
	l, err := listen(addr)
	if err != nil {
		return nil, err
	}
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	return srv, nil
}

func (e *Env) provision(ctx context.Context, opts Options) error {
	_, err := e.DynamoDB.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(e.Table),
		BillingMode: dynamotypes.BillingModePayPerRequest,
		AttributeDefinitions: []dynamotypes.AttributeDefinition{
			{AttributeName: aws.String(schema.TaskID), AttributeType: dynamotypes.ScalarAttributeTypeS},
			{AttributeName: aws.String(schema.OpenStatus), AttributeType: dynamotypes.ScalarAttributeTypeS},
			{AttributeName: aws.String(schema.UpdatedAt), AttributeType: dynamotypes.ScalarAttributeTypeS},
		},
		KeySchema: []dynamotypes.KeySchemaElement{{AttributeName: aws.String(schema.TaskID), KeyType: dynamotypes.KeyTypeHash}},
		// The template's sparse index of the tasks that still need work, for
		// the reconciler.
		GlobalSecondaryIndexes: []dynamotypes.GlobalSecondaryIndex{{
			IndexName: aws.String(schema.IndexOpen),
			KeySchema: []dynamotypes.KeySchemaElement{
				{AttributeName: aws.String(schema.OpenStatus), KeyType: dynamotypes.KeyTypeHash},
				{AttributeName: aws.String(schema.UpdatedAt), KeyType: dynamotypes.KeyTypeRange},
			},
			Projection: &dynamotypes.Projection{ProjectionType: dynamotypes.ProjectionTypeAll},
		}},
	})
	if err != nil {
		return fmt.Errorf("create table %s: %w", e.Table, err)
	}

	if e.QueueURL, e.DLQURL, err = e.queueWithDLQ(ctx, opts.Queue, opts.DLQ, opts.VisibilityTimeout, opts.MaxReceiveCount); err != nil {
		return err
	}
	// The template's: six times the submitter's 60 s timeout.
	if e.SubmitQueueURL, e.SubmitDLQURL, err = e.queueWithDLQ(ctx, opts.SubmitQueue, opts.SubmitDLQ, 6*time.Minute, opts.MaxReceiveCount); err != nil {
		return err
	}
	if _, err := e.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(e.Bucket)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", e.Bucket, err)
	}
	return nil
}

// queueWithDLQ creates a queue that moves a message to a dead-letter queue
// of its own after maxReceives receives.
func (e *Env) queueWithDLQ(ctx context.Context, name, dlqName string, visibility time.Duration, maxReceives int) (queueURL, dlqURL string, err error) {
	dlq, err := e.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(dlqName)})
	if err != nil {
		return "", "", fmt.Errorf("create queue %s: %w", dlqName, err)
	}
	redrive := fmt.Sprintf(`{"maxReceiveCount":"%d","deadLetterTargetArn":"arn:aws:sqs:%s:000000000000:%s"}`, maxReceives, Region, dlqName)
	q, err := e.SQS.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(name),
		Attributes: map[string]string{
			string(sqstypes.QueueAttributeNameVisibilityTimeout): fmt.Sprint(int(visibility.Seconds())),
			string(sqstypes.QueueAttributeNameRedrivePolicy):     redrive,
		},
	})
	if err != nil {
		return "", "", fmt.Errorf("create queue %s: %w", name, err)
	}
	return aws.ToString(q.QueueUrl), aws.ToString(dlq.QueueUrl), nil
}

// Close stops this Env's servers and deletes its queues from the shared SQS
// server. It is safe to call more than once.
func (e *Env) Close() {
	for _, s := range e.servers {
		s.Close()
	}
	e.servers = nil
	models.SyncQueues.Lock()
	delete(models.SyncQueues.Queues, e.QueueName)
	delete(models.SyncQueues.Queues, e.DLQName)
	delete(models.SyncQueues.Queues, e.SubmitQueueName)
	delete(models.SyncQueues.Queues, e.SubmitDLQName)
	models.SyncQueues.Unlock()
}

// Config is an SDK configuration with static credentials and the emulators'
// region; it never reads the environment or the shared config files.
func Config() aws.Config {
	return aws.Config{
		Region:      Region,
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		// Retries stay on: the emulators are real servers and tests of
		// failure paths inject their own faults.
		RetryMaxAttempts: 3,
	}
}

// Vars are the environment variables that point an SDK process (a built
// function) at this Env, as AWS_ENDPOINT_URL_* and the contract's names.
func (e *Env) Vars() map[string]string {
	return map[string]string{
		"AWS_REGION":                       Region,
		"AWS_ACCESS_KEY_ID":                "test",
		"AWS_SECRET_ACCESS_KEY":            "test",
		"AWS_ENDPOINT_URL_DYNAMODB":        e.DynamoDBURL,
		"AWS_ENDPOINT_URL_SQS":             e.SQSURL,
		"AWS_ENDPOINT_URL_S3":              e.S3URL,
		"AWS_ENDPOINT_URL_SECRETS_MANAGER": e.JSONURL,
		"AWS_ENDPOINT_URL_EVENTBRIDGE":     e.JSONURL,
		"S3_USE_PATH_STYLE":                "true",
		"TABLE_NAME":                       e.Table,
		"QUEUE_URL":                        e.QueueURL,
		"SUBMIT_QUEUE_URL":                 e.SubmitQueueURL,
		"BUCKET_NAME":                      e.Bucket,
		"EVENT_BUS_NAME":                   e.Bus,
	}
}

// QueueDepth counts the messages in a queue, visible or not.
func QueueDepth(name string) int {
	models.SyncQueues.RLock()
	defer models.SyncQueues.RUnlock()
	if q, ok := models.SyncQueues.Queues[name]; ok {
		return len(q.Messages)
	}
	return 0
}

// Object is a stored object as a test checks it.
type Object struct {
	Body        []byte
	ContentType string
	Metadata    map[string]string
	Tags        map[string]string
}

// Object reads the object at key in the Env's bucket.
func (e *Env) Object(ctx context.Context, key string) (Object, error) {
	out, err := e.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: &e.Bucket, Key: &key})
	if err != nil {
		return Object{}, err
	}
	defer out.Body.Close()
	body, err := io.ReadAll(out.Body)
	if err != nil {
		return Object{}, err
	}
	tagging, err := e.S3.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: &e.Bucket, Key: &key})
	if err != nil {
		return Object{}, err
	}
	tags := map[string]string{}
	for _, t := range tagging.TagSet {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return Object{Body: body, ContentType: aws.ToString(out.ContentType), Metadata: out.Metadata, Tags: tags}, nil
}

// OpenUploads counts the multipart uploads left open in the Env's bucket.
// gofakes3 answers NoSuchUpload, not an empty list, when the bucket never
// had one.
func (e *Env) OpenUploads(ctx context.Context) (int, error) {
	out, err := e.S3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &e.Bucket})
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode() == "NoSuchUpload" {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return len(out.Uploads), nil
}

// Messages are the bodies of every message in a queue, visible or not.
func Messages(name string) []string {
	models.SyncQueues.RLock()
	defer models.SyncQueues.RUnlock()
	q, ok := models.SyncQueues.Queues[name]
	if !ok {
		return nil
	}
	bodies := make([]string, len(q.Messages))
	for i, m := range q.Messages {
		bodies[i] = string(m.MessageBody)
	}
	return bodies
}

var errNoLoopback = errors.New("emulators listen on loopback only")

func listen(addr string) (net.Listener, error) {
	if err := checkLoopback(addr); err != nil {
		return nil, err
	}
	return net.Listen("tcp", addr)
}

func checkLoopback(addr string) error {
	host, _, ok := strings.Cut(addr, ":")
	if !ok || (host != "127.0.0.1" && host != "localhost") {
		return fmt.Errorf("%w: %q", errNoLoopback, addr)
	}
	return nil
}
