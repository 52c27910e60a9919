// Command ops checks and recovers a kiehook stack, deployed (found by its
// name) or local:
//
//	go run ./infra/ops [-stack kiehook | -local] urls
//	go run ./infra/ops [-stack kiehook | -local] check [-url <a result URL>]
//	go run ./infra/ops [-stack kiehook | -local] requeue <taskId>...
//	go run ./infra/ops [-stack kiehook | -local] redrive
//	go run ./infra/ops [-stack kiehook | -local] upgrade
//
// urls prints the callback URL with the token the stack made, for the
// platform's callBackUrl, and the reader's URL with its read token. check
// sends a signed callback as the platform would and shows the task's
// record once it has ended. requeue hands copy_failed tasks to the copier
// again, once their cause is fixed; redrive does it for every message in
// the copy dead-letter queue. Either way the copier resets the record as
// new, so that Task Stored is put when the copy succeeds: ops itself only
// reads records and sends messages. upgrade, once after upgrading from a
// release that wrote the status received, makes those records queued.
// It uses the AWS CLI's
// credentials and region. Requeue and redrive are functions/recovery's;
// this is their command.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/kiehook/kiehook/events"
	"github.com/kiehook/kiehook/functions/recovery"
	"github.com/kiehook/kiehook/functions/schema"
)

// Recovery is what the commands act with: recovery's Requeue and Redrive,
// and the DynamoDB client that check reads its task's record with.
type Recovery struct {
	*recovery.Recovery
	DynamoDB dynamoAPI
}

// dynamoAPI is the part of DynamoDB check uses: it only reads.
type dynamoAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
}

// key is a record's key, for check's read.
func key(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{schema.TaskID: &types.AttributeValueMemberS{Value: id}}
}

func main() {
	stack := flag.String("stack", "kiehook", "the deployed stack's name (samconfig.toml's stack_name)")
	local := flag.Bool("local", false, "act on the local stack (go run ./infra/local) instead")
	resultURL := flag.String("url", "", "with check: a result file of yours on the platform's hosts, for a success to copy (default: a failure, nothing to copy)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go run ./infra/ops [-stack NAME | -local] [-url URL] urls | check | requeue TASK_ID... | redrive | upgrade")
		flag.PrintDefaults()
	}
	flag.Parse()
	ctx := context.Background()
	r, caller, err := connect(ctx, *stack, *local)
	switch {
	case err != nil:
	case flag.Arg(0) == "urls" && flag.NArg() == 1:
		caller.PrintURLs(os.Stdout)
	case flag.Arg(0) == "check":
		err = r.Check(ctx, caller, *resultURL, 2*time.Minute, os.Stdout)
	default:
		err = run(ctx, r, flag.Args(), os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ops:", err)
		os.Exit(1)
	}
}

// run carries out one command.
func run(ctx context.Context, r *Recovery, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New("name a command: urls, check, requeue TASK_ID..., redrive or upgrade")
	}
	switch cmd, ids := args[0], args[1:]; {
	case cmd == "requeue" && len(ids) > 0:
		var errs []error
		for _, id := range ids {
			if err := r.Requeue(ctx, id); err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(out, "%s queued for the copier\n", id)
		}
		return errors.Join(errs...)
	case cmd == "upgrade" && len(ids) == 0:
		n, err := r.Upgrade(ctx)
		fmt.Fprintf(out, "%d tasks an earlier release left received are queued; the reconciler sends their messages\n", n)
		return err
	case cmd == "redrive" && len(ids) == 0:
		letters, unseen, err := r.Redrive(ctx)
		kept := 0
		for _, l := range letters {
			fmt.Fprintf(out, "%s %s: %s\n", l.TaskID, l.Action, l.Why)
			if l.Action == recovery.Kept {
				kept++
			}
		}
		fmt.Fprintf(out, "%d dead letters seen; %d stay in the dead-letter queue", len(letters), kept)
		if kept > 0 {
			fmt.Fprint(out, " (hidden for a minute: run redrive again after it, once their cause is fixed)")
		}
		if unseen > 0 {
			fmt.Fprintf(out, "; %d more were kept out of sight by a reconciler run: run redrive again", unseen)
		}
		fmt.Fprintln(out)
		return err
	default:
		return fmt.Errorf("unknown command %q: urls, check, requeue TASK_ID..., redrive or upgrade", strings.Join(args, " "))
	}
}

// connect finds the resources and how to call back: the stack's outputs
// and secrets, or the local stack's.
func connect(ctx context.Context, stack string, local bool) (*Recovery, Caller, error) {
	if local {
		return localRecovery(ctx)
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, Caller{}, err
	}
	out, err := cloudformation.NewFromConfig(cfg).DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(stack)})
	if err != nil {
		return nil, Caller{}, fmt.Errorf("stack %s: %w", stack, err)
	}
	outputs := map[string]string{}
	for _, o := range out.Stacks[0].Outputs {
		outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	res := recovery.Resources{Table: outputs["TasksTableName"], QueueURL: outputs["CopyQueueUrl"], DLQURL: outputs["CopyDeadLetterQueueUrl"]}
	if res.Table == "" || res.QueueURL == "" || res.DLQURL == "" || outputs["CallbackUrl"] == "" || outputs["ReaderUrl"] == "" {
		return nil, Caller{}, fmt.Errorf("stack %s lacks the outputs TasksTableName, CopyQueueUrl, CopyDeadLetterQueueUrl, CallbackUrl and ReaderUrl: is it kiehook?", stack)
	}
	// The key and the tokens as their holders use them: the first of each
	// secret's list.
	sm := secretsmanager.NewFromConfig(cfg)
	first := func(output string) (string, error) {
		arn := outputs[output]
		if arn == "" {
			return "", nil
		}
		v, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(arn)})
		if err != nil {
			return "", fmt.Errorf("read %s: %w", output, err)
		}
		value, _, _ := strings.Cut(aws.ToString(v.SecretString), ",")
		return strings.TrimSpace(value), nil
	}
	caller := Caller{ReaderURL: outputs["ReaderUrl"], SubmitURL: outputs["SubmitUrl"]}
	if caller.Key, err = first("WebhookKeySecretArn"); err != nil {
		return nil, Caller{}, err
	}
	token, err := first("CallbackTokenSecretArn")
	if err != nil {
		return nil, Caller{}, err
	}
	caller.CallbackURL = outputs["CallbackUrl"] + "?token=" + url.QueryEscape(token)
	if caller.ReadToken, err = first("ReadTokenSecretArn"); err != nil {
		return nil, Caller{}, err
	}
	db := dynamodb.NewFromConfig(cfg)
	return &Recovery{Recovery: recovery.New(db, sqs.NewFromConfig(cfg), res, time.Now), DynamoDB: db}, caller, nil
}

// localRecovery reaches the local stack at events/env.json's endpoints,
// and its callback URL at go run ./infra/local's default address.
func localRecovery(ctx context.Context) (*Recovery, Caller, error) {
	vars, err := events.LocalVars("ReconcilerFunction")
	if err != nil {
		return nil, Caller{}, err
	}
	callback, err := events.LocalVars("CallbackFunction")
	if err != nil {
		return nil, Caller{}, err
	}
	reader, err := events.LocalVars("ReaderFunction")
	if err != nil {
		return nil, Caller{}, err
	}
	res := recovery.Resources{Table: vars["TABLE_NAME"], QueueURL: vars["QUEUE_URL"], DLQURL: vars["QUEUE_URL"] + "-dlq"}
	r, err := recoveryAt(ctx, vars["AWS_ENDPOINT_URL_DYNAMODB"], vars["AWS_ENDPOINT_URL_SQS"], res)
	caller := Caller{CallbackURL: "http://127.0.0.1:3000/?token=" + url.QueryEscape(callback["CALLBACK_TOKEN"]), Key: callback["WEBHOOK_HMAC_KEY"],
		ReaderURL: "http://127.0.0.1:3001/", ReadToken: reader["READ_TOKEN"]}
	return r, caller, err
}

// recoveryAt is a Recovery whose clients reach emulators at the given
// endpoints.
func recoveryAt(ctx context.Context, dynamoURL, sqsURL string, res recovery.Resources) (*Recovery, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "test", SecretAccessKey: "test"}, nil
		})))
	if err != nil {
		return nil, err
	}
	db := dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		o.BaseEndpoint = aws.String(dynamoURL)
		o.DisableValidateResponseChecksum = true // minidyn's CRC32 header does not match
	})
	q := sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(sqsURL) })
	return &Recovery{Recovery: recovery.New(db, q, res, time.Now), DynamoDB: db}, nil
}
