package template

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/kiehook/kiehook/functions/schema"
	"github.com/kiehook/kiehook/infra/stack"
	"github.com/kiehook/kiehook/infra/yamlnode"
)

type node = yamlnode.Node

func load(tb testing.TB) node {
	tb.Helper()
	b, err := os.ReadFile("../../template.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	tpl, err := yamlnode.Parse(b)
	if err != nil {
		tb.Fatalf("template.yaml: %v", err)
	}
	return tpl
}

func expect(tb testing.TB, n node, want string, path ...string) {
	tb.Helper()
	if got := n.At(path...).Str(); got != want {
		tb.Errorf("%s = %q, want %q", strings.Join(path, "."), got, want)
	}
}

// refersToParameter checks that n is !Ref to one of the template's parameters.
func refersToParameter(tb testing.TB, tpl, n node, what string) {
	tb.Helper()
	if n.Tag != "!Ref" || !tpl.At("Parameters", n.Value).OK() {
		tb.Errorf("%s must be !Ref to a parameter, is %s %q", what, n.Tag, n.Str())
	}
}

func TestTemplateIsAServerlessApplication(t *testing.T) {
	tpl := load(t)
	expect(t, tpl, "AWS::Serverless-2016-10-31", "Transform")
	fn := tpl.At("Globals", "Function")
	expect(t, fn, "provided.al2023", "Runtime")
	expect(t, fn, "bootstrap", "Handler")
	expect(t, fn, "JSON", "LoggingConfig", "LogFormat")
	if got := fn.At("Architectures").Strs(); !slices.Equal(got, []string{"arm64"}) {
		t.Errorf("Architectures = %v, want [arm64]", got)
	}
}

func TestEveryFunctionBuildsAStaticNorpcBootstrap(t *testing.T) {
	tpl := load(t)
	makefile, err := os.ReadFile("../../functions/Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"CallbackFunction": "callback", "CopierFunction": "copier", "ReconcilerFunction": "reconciler"} {
		t.Run(name+" is built by the Makefile from ./functions/"+dir, func(t *testing.T) {
			fn := tpl.At("Resources", name)
			expect(t, fn, "AWS::Serverless::Function", "Type")
			expect(t, fn, "makefile", "Metadata", "BuildMethod")
			expect(t, fn, "functions", "Metadata", "ContextPath")
			target := regexp.MustCompile(`(?m)^build-` + name + `:\n\t(.+)$`).FindStringSubmatch(string(makefile))
			if target == nil || !strings.Contains(target[1], "./functions/"+dir) || !strings.Contains(target[1], "$(ARTIFACTS_DIR)/bootstrap") {
				t.Fatalf("no build-%s target building ./functions/%s into $(ARTIFACTS_DIR)/bootstrap", name, dir)
			}
			for _, flag := range []string{"CGO_ENABLED=0", "-tags lambda.norpc", "GOOS=linux"} {
				if !strings.Contains(string(makefile), flag) {
					t.Errorf("the Makefile's build lacks %s", flag)
				}
			}
			if _, err := os.Stat("../../functions/" + dir + "/main.go"); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestCallbackFunction(t *testing.T) {
	tpl := load(t)
	p := tpl.At("Resources", "CallbackFunction", "Properties")
	expect(t, p, "NONE", "FunctionUrlConfig", "AuthType")
	t.Run("no function reserves concurrency, so that small accounts can deploy", func(t *testing.T) {
		for _, fn := range []string{"CallbackFunction", "CopierFunction", "ReconcilerFunction", "ReaderFunction"} {
			if tpl.At("Resources", fn, "Properties", "ReservedConcurrentExecutions").OK() {
				t.Errorf("%s reserves concurrency", fn)
			}
		}
	})
	if timeout, _ := strconv.Atoi(p.At("Timeout").Str()); timeout <= 10 || timeout >= 15 {
		t.Errorf("Timeout %d: must exceed the 10 s request budget and stay under the platform's 15 s", timeout)
	}
	if got := allowedActions(p); !slices.Equal(got, []string{"dynamodb:PutItem", "dynamodb:UpdateItem", "events:PutEvents", "secretsmanager:GetSecretValue", "sqs:SendMessage"}) {
		t.Errorf("actions %v", got)
	}
	t.Run("the key and the token are read from their secrets, and from no other", func(t *testing.T) {
		if got := statement(p, "ReadCallbackSecrets").At("Resource").Items(); len(got) != 2 || got[0].Value != "WebhookKeySecret" || got[1].Value != "CallbackTokenSecret" {
			t.Errorf("the secrets' statement names %v", got)
		}
		env := p.At("Environment", "Variables")
		if v := env.At("CALLBACK_TOKEN_SECRET"); v.Tag != "!Ref" || v.Value != "CallbackTokenSecret" {
			t.Error("CALLBACK_TOKEN_SECRET must name the token's secret")
		}
		if v := env.At("WEBHOOK_HMAC_KEY_SECRET"); v.Tag != "!Ref" || v.Value != "WebhookKeySecret" {
			t.Error("WEBHOOK_HMAC_KEY_SECRET must name the key's secret")
		}
		for _, section := range []string{"Globals", "Resources", "Outputs"} {
			tpl.At(section).Walk(func(n node) {
				if n.Tag == "!Ref" && n.Value == "WebhookHmacKey" && n != tpl.At("Resources", "WebhookKeySecret", "Properties", "SecretString") {
					t.Error("the WebhookHmacKey parameter may only go into its secret")
				}
			})
		}
	})
}

// An Enter through the guided deploy gives an authenticated stack: the key
// must be typed, and the stack makes the callback and read tokens itself.
func TestEveryStackIsAuthenticated(t *testing.T) {
	tpl := load(t)
	key := tpl.At("Parameters", "WebhookHmacKey")
	expect(t, key, "true", "NoEcho")
	expect(t, key, "1", "MinLength")
	if key.At("Default").OK() {
		t.Error("the webhook key has a default: a stack could deploy without it")
	}
	for _, name := range []string{"CallbackTokenSecret", "ReadTokenSecret"} {
		secret := tpl.At("Resources", name)
		if secret.At("Condition").OK() {
			t.Errorf("%s exists only under %s", name, secret.At("Condition").Str())
		}
		gen := secret.At("Properties", "GenerateSecretString")
		if n, _ := strconv.Atoi(gen.At("PasswordLength").Str()); n < 32 || gen.At("ExcludePunctuation").Str() != "true" {
			t.Errorf("%s: the stack must make a long token of letters and digits, which a URL carries unescaped", name)
		}
	}
	if tpl.At("Resources", "WebhookKeySecret", "Condition").OK() {
		t.Error("the key's secret must always exist")
	}
}

func TestCopierFunction(t *testing.T) {
	tpl := load(t)
	p := tpl.At("Resources", "CopierFunction", "Properties")
	ev := p.At("Events", "CopyQueueEvent")
	expect(t, ev, "SQS", "Type")
	expect(t, ev, "CopyQueue.Arn", "Properties", "Queue")
	if size, _ := strconv.Atoi(ev.At("Properties", "BatchSize").Str()); size < 1 || size > 4 {
		t.Errorf("BatchSize %d: every copy of a batch starts at once, and memory allows 4", size)
	}
	if most, _ := strconv.Atoi(ev.At("Properties", "ScalingConfig", "MaximumConcurrency").Str()); most < 2 {
		t.Errorf("ScalingConfig.MaximumConcurrency %d: Lambda takes 2 to 1000", most)
	}
	if !ev.At("Properties", "MaximumBatchingWindowInSeconds").OK() {
		t.Error("no MaximumBatchingWindowInSeconds")
	}
	if got := ev.At("Properties", "FunctionResponseTypes").Strs(); !slices.Equal(got, []string{"ReportBatchItemFailures"}) {
		t.Errorf("FunctionResponseTypes = %v", got)
	}
	if got := allowedActions(p); !slices.Equal(got, []string{"dynamodb:GetItem", "dynamodb:UpdateItem", "events:PutEvents", "kms:Decrypt", "s3:AbortMultipartUpload", "s3:DeleteObject", "s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:PutObject", "s3:PutObjectTagging", "secretsmanager:GetSecretValue"}) {
		t.Errorf("actions %v", got)
	}
	underPrefix(t, statement(p, "WriteCopies").At("Resource"))
	t.Run("it streams: no ephemeral storage beyond Lambda's default, and files up to S3's 10,000 parts", func(t *testing.T) {
		if p.At("EphemeralStorage").OK() || tpl.At("Parameters", "CopierEphemeralStorage").OK() {
			t.Error("the copier spools nothing: it needs no ephemeral storage setting")
		}
		// S3's 10,000 parts of the copier's 5 MiB (objects.MaxParts × PartSize,
		// which the copier's configuration enforces).
		if most := tpl.At("Parameters", "MaxObjectBytes", "MaxValue").Str(); most != "52428800000" {
			t.Errorf("MaxObjectBytes MaxValue %s, want S3's parts × the copier's part size", most)
		}
	})
}

// underPrefix checks that an S3 resource is the bucket's objects under the
// prefix of the Settings mapping.
func underPrefix(tb testing.TB, res node) {
	tb.Helper()
	items := res.Items()
	if res.Tag != "!Sub" || len(items) != 2 || items[0].Value != "${ObjectsBucket.Arn}/${Prefix}*" {
		tb.Errorf("S3 access must be limited to the prefix, is %s %v", res.Tag, items)
		return
	}
	if p := items[1].At("Prefix"); p.Tag != "!FindInMap" || !slices.Equal(p.Strs(), []string{"Settings", "Objects", "Prefix"}) {
		tb.Errorf("the prefix must be the Settings mapping's, is %s %v", p.Tag, p.Strs())
	}
}

// statements are the inline policy statements of a function, unwrapping !If.
func statements(fn node) map[string]node {
	all := map[string]node{}
	for _, policy := range fn.At("Policies").Items() {
		for _, s := range policy.At("Statement").Items() {
			if s.Tag == "!If" {
				s = s.Items()[1]
			}
			all[s.At("Sid").Str()] = s
		}
	}
	return all
}

func statement(fn node, sid string) node { return statements(fn)[sid] }

func conditionalOn(fn node, sid string) string {
	for _, policy := range fn.At("Policies").Items() {
		for _, s := range policy.At("Statement").Items() {
			if s.Tag == "!If" && s.Items()[1].At("Sid").Str() == sid {
				return s.Items()[0].Value
			}
		}
	}
	return ""
}

func allowedActions(fn node) []string {
	var actions []string
	for _, s := range statements(fn) {
		actions = append(actions, s.At("Action").Strs()...)
	}
	slices.Sort(actions)
	return slices.Compact(actions)
}

func TestNoAllowStatementHasAWildcard(t *testing.T) {
	tpl := load(t)
	resources := tpl.At("Resources")
	for _, name := range resources.Keys() {
		if resources.At(name, "Type").Str() == "AWS::KMS::Key" {
			continue // in a key policy, "*" is the key itself
		}
		checkNoWildcard(t, resources.At(name))
	}
}

func checkNoWildcard(t *testing.T, resource node) {
	t.Helper()
	resource.Walk(func(n node) {
		if n.Kind != yaml.MappingNode || n.At("Effect").Str() != "Allow" {
			return
		}
		actions := n.At("Action").Strs()
		if a := n.At("Action"); a.Kind == yaml.ScalarNode {
			actions = []string{a.Value}
		}
		for _, a := range actions {
			if strings.Contains(a, "*") {
				t.Errorf("statement %s allows wildcard action %s", n.At("Sid").Str(), a)
			}
		}
		if n.At("Resource").Str() == "*" {
			t.Errorf("statement %s allows every resource", n.At("Sid").Str())
		}
	})
}

func TestReconcilerFunction(t *testing.T) {
	tpl := load(t)
	p := tpl.At("Resources", "ReconcilerFunction", "Properties")
	ev := p.At("Events", "EveryMinute")
	expect(t, ev, "Schedule", "Type")
	expect(t, ev, "rate(1 minute)", "Properties", "Schedule")
	if got := allowedActions(p); !slices.Equal(got, []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem", "events:PutEvents", "kms:Decrypt", "s3:AbortMultipartUpload", "s3:DeleteObject", "s3:ListBucket", "s3:ListBucketMultipartUploads", "secretsmanager:GetSecretValue", "sqs:ReceiveMessage", "sqs:SendMessage"}) {
		t.Errorf("actions %v", got)
	}
	if res := statement(p, "ListOpenTasks").At("Resource"); res.Value != "${TasksTable.Arn}/index/"+schema.IndexOpen {
		t.Errorf("Query must be limited to the open-tasks index, is %q", res.Value)
	}
	if cond := conditionalOn(p, "ReadApiKey"); cond != "UsesApiKeySecret" {
		t.Errorf("the API key statement must exist only with a key, is under %q", cond)
	}
	gsi := tpl.At("Resources", "TasksTable", "Properties", "GlobalSecondaryIndexes").Items()
	if len(gsi) != 1 || gsi[0].At("IndexName").Str() != schema.IndexOpen {
		t.Fatal("the table needs the open-tasks index")
	}
	keys := gsi[0].At("KeySchema").Items()
	if len(keys) != 2 || keys[0].At("AttributeName").Str() != schema.OpenStatus || keys[1].At("AttributeName").Str() != schema.UpdatedAt {
		t.Error("open-tasks is keyed by openStatus and updatedAt")
	}
	if tpl.At("Parameters", "KieApiKey").OK() {
		t.Error("the API key is typed at deploy: it is given by its secret's ARN")
	}
}

// A secret given by ARN is read whether its ARN is full or partial (no
// six-character suffix, which the parameter's pattern cannot tell apart
// from a name's last word), and decrypted when its KMS key is the user's.
func TestTheAPIKeySecretGivenByARN(t *testing.T) {
	tpl := load(t)
	for _, fn := range []string{"CopierFunction", "ReconcilerFunction"} {
		p := tpl.At("Resources", fn, "Properties")
		t.Run(fn+" reads the secret by its full or its partial ARN", func(t *testing.T) {
			res := statement(p, "ReadApiKey").At("Resource").Items()
			if len(res) != 2 || res[0].Tag != "!Ref" || res[0].Value != "KieApiKeySecretArn" || res[1].Tag != "!Sub" || res[1].Value != "${KieApiKeySecretArn}-??????" {
				t.Errorf("ReadApiKey's resources %v", res)
			}
		})
		t.Run(fn+" decrypts it through Secrets Manager only, for that secret only", func(t *testing.T) {
			s := statement(p, "DecryptApiKey")
			if got := s.At("Action").Strs(); !slices.Equal(got, []string{"kms:Decrypt"}) {
				t.Errorf("actions %v", got)
			}
			if v := s.At("Condition", "StringEquals", "kms:ViaService").Value; v != "secretsmanager.${AWS::Region}.amazonaws.com" {
				t.Errorf("kms:ViaService %q", v)
			}
			if v := s.At("Condition", "StringLike", "kms:EncryptionContext:SecretARN").Value; v != "${KieApiKeySecretArn}*" {
				t.Errorf("kms:EncryptionContext:SecretARN %q", v)
			}
			if cond := conditionalOn(p, "DecryptApiKey"); cond != "UsesApiKeySecret" {
				t.Errorf("under %q", cond)
			}
		})
	}
}

func TestQueues(t *testing.T) {
	tpl := load(t)
	q := tpl.At("Resources", "CopyQueue", "Properties")
	t.Run("the reconciler reads the dead-letter queue, and leaves its messages", func(t *testing.T) {
		fn := tpl.At("Resources", "ReconcilerFunction", "Properties")
		if v := fn.At("Environment", "Variables", "DEAD_LETTER_QUEUE_URL"); v.Tag != "!Ref" || v.Value != "CopyDeadLetterQueue" {
			t.Errorf("DEAD_LETTER_QUEUE_URL %s %q", v.Tag, v.Value)
		}
		read := statement(fn, "ReadDeadLetters")
		if got := read.At("Action").Strs(); !slices.Equal(got, []string{"sqs:ReceiveMessage"}) || read.At("Resource").Value != "CopyDeadLetterQueue.Arn" {
			t.Errorf("ReadDeadLetters %v on %q", got, read.At("Resource").Value)
		}
		underPrefix(t, statement(fn, "RemoveAbandonedCopies").At("Resource"))
		list := statement(fn, "ListAbandonedCopies")
		if list.At("Resource").Value != "ObjectsBucket.Arn" || list.At("Condition", "StringLike", "s3:prefix").Tag != "!Sub" {
			t.Error("the reconciler may list the bucket under the prefix only")
		}
	})
	dlq := tpl.At("Resources", "CopyDeadLetterQueue", "Properties")
	expect(t, q, "CopyDeadLetterQueue.Arn", "RedrivePolicy", "deadLetterTargetArn")
	if got := q.At("RedrivePolicy", "maxReceiveCount"); got.Tag != "!FindInMap" || !slices.Equal(got.Strs(), []string{"Settings", "Copy", "MaxReceiveCount"}) {
		t.Errorf("maxReceiveCount must be the Settings mapping's, is %s %v", got.Tag, got.Strs())
	}
	visibility, _ := strconv.Atoi(q.At("VisibilityTimeout").Str())
	timeout, _ := strconv.Atoi(tpl.At("Resources", "CopierFunction", "Properties", "Timeout").Str())
	if timeout == 0 || visibility < 6*timeout {
		t.Errorf("VisibilityTimeout %d must be at least 6 × the copier's timeout %d", visibility, timeout)
	}
	for _, props := range []node{q, dlq} {
		expect(t, props, "true", "SqsManagedSseEnabled")
	}
	expect(t, dlq, "1209600", "MessageRetentionPeriod")
}

func TestTable(t *testing.T) {
	tpl := load(t)
	p := tpl.At("Resources", "TasksTable", "Properties")
	expect(t, p, "PAY_PER_REQUEST", "BillingMode")
	keys := p.At("KeySchema").Items()
	if len(keys) != 1 || keys[0].At("AttributeName").Str() != schema.TaskID || keys[0].At("KeyType").Str() != "HASH" {
		t.Error("the key must be taskId alone")
	}
	attrs := p.At("AttributeDefinitions").Items()
	if len(attrs) == 0 || attrs[0].At("AttributeName").Str() != schema.TaskID || attrs[0].At("AttributeType").Str() != "S" {
		t.Error("taskId must be a string")
	}
	expect(t, p, "expiresAt", "TimeToLiveSpecification", "AttributeName")
	expect(t, p, "true", "TimeToLiveSpecification", "Enabled")
	expect(t, p, "true", "PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled")
	expect(t, p, "true", "DeletionProtectionEnabled")
}

func TestBucket(t *testing.T) {
	tpl := load(t)
	p := tpl.At("Resources", "ObjectsBucket", "Properties")
	for _, block := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		expect(t, p, "true", "PublicAccessBlockConfiguration", block)
	}
	t.Run("sam delete keeps the bucket with its TLS-only policy", func(t *testing.T) {
		for _, name := range []string{"ObjectsBucket", "ObjectsBucketPolicy"} {
			expect(t, tpl, "Retain", "Resources", name, "DeletionPolicy")
			expect(t, tpl, "Retain", "Resources", name, "UpdateReplacePolicy")
		}
	})
	if !p.At("BucketEncryption", "ServerSideEncryptionConfiguration").OK() {
		t.Error("no encryption")
	}
	if rules := p.At("OwnershipControls", "Rules").Items(); len(rules) != 1 || rules[0].At("ObjectOwnership").Str() != "BucketOwnerEnforced" {
		t.Error("ownership must be BucketOwnerEnforced")
	}
	var expiry node
	for _, r := range p.At("LifecycleConfiguration", "Rules").Items() {
		if r.Tag == "!If" && r.Items()[0].Value == "HasObjectExpiration" {
			expiry = r.Items()[1]
		}
	}
	refersToParameter(t, tpl, expiry.At("ExpirationInDays"), "the lifecycle expiry")
	policy := tpl.At("Resources", "ObjectsBucketPolicy", "Properties", "PolicyDocument", "Statement").Items()
	if len(policy) == 0 || policy[0].At("Effect").Str() != "Deny" || policy[0].At("Condition", "Bool", "aws:SecureTransport").Str() != "false" {
		t.Error("the bucket policy must deny requests without TLS")
	}
}

func TestAlarms(t *testing.T) {
	tpl := load(t)
	resources := tpl.At("Resources")
	for _, name := range []string{"DeadLetterQueueAlarm", "CopierErrorsAlarm", "ReaderErrorsAlarm", "ReconcilerErrorsAlarm", "Callback5xxAlarm", "AuthFailuresAlarm", "StaleQueuedAlarm"} {
		expect(t, resources.At(name), "AWS::CloudWatch::Alarm", "Type")
	}
	for _, name := range resources.Keys() {
		if resources.At(name, "Type").Str() != "AWS::CloudWatch::Alarm" {
			continue
		}
		if actions := resources.At(name, "Properties", "AlarmActions"); actions.Tag != "!If" || actions.Items()[0].Value != "HasAlarmEmail" {
			t.Errorf("%s must notify the alarm topic when an email is given", name)
		}
	}
	if subs := tpl.At("Resources", "AlarmTopic", "Properties", "Subscription").Items(); len(subs) != 1 || subs[0].At("Protocol").Str() != "email" || subs[0].At("Endpoint").Str() != "AlarmEmail" {
		t.Error("the topic must mail AlarmEmail")
	}
	t.Run("every function's crashes raise an alarm: a crash is never silent", func(t *testing.T) {
		// What the alarms watch, by metric: the function or queue named
		// by each one's dimension.
		watched := map[string]map[string]bool{}
		for _, name := range resources.Keys() {
			r := resources.At(name)
			if r.At("Type").Str() != "AWS::CloudWatch::Alarm" {
				continue
			}
			for _, m := range append([]node{r.At("Properties")}, r.At("Properties", "Metrics").Items()...) {
				stat := m.At("MetricStat", "Metric")
				if !stat.OK() {
					stat = m
				}
				metric := stat.At("Namespace").Str() + " " + stat.At("MetricName").Str()
				if watched[metric] == nil {
					watched[metric] = map[string]bool{}
				}
				for _, d := range stat.At("Dimensions").Items() {
					watched[metric][strings.TrimSuffix(d.At("Value").Value, ".QueueName")] = true
				}
			}
		}
		for _, name := range resources.Keys() {
			fn := resources.At(name, "Properties")
			if resources.At(name, "Type").Str() != "AWS::Serverless::Function" {
				continue
			}
			events := fn.At("Events")
			switch {
			case watched["AWS/Lambda Errors"][name]:
			// A function invoked only through its Function URL: Lambda
			// answers its errors and timeouts 5xx, which Url5xxCount counts.
			case watched["AWS/Lambda Url5xxCount"][name] && fn.At("FunctionUrlConfig").OK() && len(events.Keys()) == 0:
			// A function fed only by one queue: a crash returns its batch,
			// and messages that keep failing reach the dead-letter queue.
			case len(events.Keys()) == 1 && events.At(events.Keys()[0], "Type").Str() == "SQS" &&
				watched["AWS/SQS ApproximateNumberOfMessagesVisible"][deadLetterQueueOf(resources, events.At(events.Keys()[0], "Properties", "Queue").Str())]:
			default:
				t.Errorf("no alarm sees %s crash", name)
			}
		}
	})
	t.Run("the alarm topic is not under the AWS managed key, which CloudWatch cannot use", func(t *testing.T) {
		// Alarms published to a topic under alias/aws/sns are dropped
		// without an error; the stack's topic has no key at all.
		if key := tpl.At("Resources", "AlarmTopic", "Properties", "KmsMasterKeyId"); key.OK() {
			t.Errorf("the alarm topic's key is %s %q", key.Tag, key.Value)
		}
	})
}

// deadLetterQueueOf is the logical id of the dead-letter queue of the
// queue whose ARN is arn (Queue.Arn), "" if it has none.
func deadLetterQueueOf(resources node, arn string) string {
	queue := strings.TrimSuffix(arn, ".Arn")
	return strings.TrimSuffix(resources.At(queue, "Properties", "RedrivePolicy", "deadLetterTargetArn").Str(), ".Arn")
}

// contractVariables are the configuration names of the contract.
var contractVariables = []string{
	"TABLE_NAME", "QUEUE_URL", "BUCKET_NAME", "OBJECT_PREFIX", "WEBHOOK_HMAC_KEY", "WEBHOOK_HMAC_KEY_SECRET",
	"CALLBACK_TOKEN", "ALLOW_UNAUTHENTICATED", "SIGNATURE_TOLERANCE", "RECORD_TTL", "SOURCE_HOSTS",
	"ALLOW_PRIVATE_SOURCES", "MAX_OBJECT_BYTES", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB",
	"AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_S3", "S3_USE_PATH_STYLE",
	// kiehook's own additions, documented in docs/configuration.md:
	"METRICS_NAMESPACE", "KIE_API_KEY", "KIE_API_KEY_SECRET", "KIE_API_BASE_URL", "VERIFY_WITH_PLATFORM",
	"PENDING_POLL_AFTER", "STUCK_RECEIVED_AFTER", "QUEUED_ALERT_AFTER", "PLATFORM_RETENTION", "RECONCILE_LIMIT",
	"SECRET_REFRESH", "EVENT_BUS_NAME", "AWS_ENDPOINT_URL_EVENTBRIDGE", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "NOTIFY_SWEEP_AFTER",
	"DEAD_LETTER_QUEUE_URL", "CALLBACK_TOKEN_SECRET",
	// The reader's, in the contract's third edition, and its IAM switch:
	"READ_TOKEN", "READ_TOKEN_SECRET", "LINK_TTL", "READ_IAM_AUTH",
	// Submitting's, in the sixth edition:
	"SUBMIT_QUEUE_URL", "SUBMIT_TOKEN", "SUBMIT_TOKEN_SECRET", "CALLBACK_URL", "SUBMIT_RATE", "SUBMIT_WINDOW",
	"SUBMIT_UNKNOWN_AFTER", "SUBMIT_MAX_WAIT",
}

func TestEnvironmentFollowsTheContract(t *testing.T) {
	tpl := load(t)
	set := map[string]bool{}
	for _, vars := range []node{
		tpl.At("Globals", "Function", "Environment", "Variables"),
		tpl.At("Resources", "CallbackFunction", "Properties", "Environment", "Variables"),
		tpl.At("Resources", "CopierFunction", "Properties", "Environment", "Variables"),
		tpl.At("Resources", "ReconcilerFunction", "Properties", "Environment", "Variables"),
		tpl.At("Resources", "ReaderFunction", "Properties", "Environment", "Variables"),
		tpl.At("Resources", "SubmitFunction", "Properties", "Environment", "Variables"),
		tpl.At("Resources", "SubmitterFunction", "Properties", "Environment", "Variables"),
	} {
		for _, name := range vars.Keys() {
			if !slices.Contains(contractVariables, name) {
				t.Errorf("%s is not a contract variable", name)
			}
			set[name] = true
		}
	}
	// The deployed way sets what the stack decides (its resources, the
	// parameters, the shared Settings); every other setting is the
	// functions' own default, written once in their code.
	for _, name := range []string{"TABLE_NAME", "QUEUE_URL", "BUCKET_NAME", "OBJECT_PREFIX", "WEBHOOK_HMAC_KEY_SECRET", "CALLBACK_TOKEN_SECRET", "MAX_OBJECT_BYTES", "METRICS_NAMESPACE", "EVENT_BUS_NAME", "READ_TOKEN_SECRET", "DEAD_LETTER_QUEUE_URL"} {
		if !set[name] {
			t.Errorf("the template does not set %s", name)
		}
	}
	// The key would reach the function's configuration, which
	// lambda:GetFunctionConfiguration shows, if ALLOW_UNAUTHENTICATED or
	// a plain key could be deployed; the local-only ones stay empty.
	if set["ALLOW_UNAUTHENTICATED"] {
		t.Error("a deployed stack is always authenticated: no ALLOW_UNAUTHENTICATED")
	}
}

func TestTaskEventBus(t *testing.T) {
	tpl := load(t)
	busArn := tpl.At("Outputs", "EventBusArn", "Value")
	t.Run("the stack creates a bus unless one is named", func(t *testing.T) {
		bus := tpl.At("Resources", "TaskEventBus")
		expect(t, bus, "AWS::Events::EventBus", "Type")
		expect(t, bus, "CreatesEventBus", "Condition")
		if c := tpl.At("Conditions", "CreatesEventBus"); c.Tag != "!Equals" || c.Items()[0].Value != "EventBusName" || c.Items()[1].Value != "" {
			t.Error("CreatesEventBus must be EventBusName = \"\"")
		}
		if name := tpl.At("Globals", "Function", "Environment", "Variables", "EVENT_BUS_NAME"); name.Tag != "!If" || name.Items()[0].Value != "CreatesEventBus" {
			t.Error("every function's EVENT_BUS_NAME must be the created or the named bus")
		}
		if busArn.Tag != "!If" || busArn.Items()[1].Value != "TaskEventBus.Arn" {
			t.Errorf("EventBusArn output %s %v", busArn.Tag, busArn.Items())
		}
	})
	t.Run("an archive keeps kiehook's events for a while", func(t *testing.T) {
		a := tpl.At("Resources", "TaskEventArchive")
		expect(t, a, "AWS::Events::Archive", "Type")
		if days, _ := strconv.Atoi(a.At("Properties", "RetentionDays").Str()); days < 1 {
			t.Errorf("RetentionDays %d: events must stay for replay a while, not forever", days)
		}
		if got := a.At("Properties", "EventPattern", "source").Strs(); !slices.Equal(got, []string{"kiehook"}) {
			t.Errorf("archive pattern source %v", got)
		}
		if src := a.At("Properties", "SourceArn"); src.Tag != "!If" || src.Items()[1].Value != busArn.Items()[1].Value {
			t.Error("the archive must be of the task event bus")
		}
	})
	t.Run("each function may put events on that bus only", func(t *testing.T) {
		for _, fn := range []string{"CallbackFunction", "CopierFunction", "ReconcilerFunction"} {
			s := statement(tpl.At("Resources", fn, "Properties"), "PutTaskEvents")
			if got := s.At("Action").Strs(); !slices.Equal(got, []string{"events:PutEvents"}) {
				t.Errorf("%s: actions %v", fn, got)
			}
			res := s.At("Resource")
			if res.Tag != "!If" || res.Items()[1].Value != busArn.Items()[1].Value || res.Items()[2].Value != busArn.Items()[2].Value {
				t.Errorf("%s may put events elsewhere than the task event bus", fn)
			}
		}
	})
	t.Run("the reconciler's sweep knows the bucket of the Task Stored events it puts", func(t *testing.T) {
		expect(t, tpl, "ObjectsBucket", "Resources", "ReconcilerFunction", "Properties", "Environment", "Variables", "BUCKET_NAME")
	})
}

func TestOutputs(t *testing.T) {
	tpl := load(t)
	for _, name := range []string{"CallbackUrl", "TasksTableName", "ObjectsBucketName", "CopyQueueUrl", "CopyDeadLetterQueueUrl", "EventBusName", "EventBusArn"} {
		if !tpl.At("Outputs", name, "Value").OK() {
			t.Errorf("no output %s", name)
		}
	}
	if d := tpl.At("Outputs", "CallbackUrl", "Description").Str(); !strings.Contains(d, "ops urls") {
		t.Errorf("the callback URL's description must explain the token: %q", d)
	}
}

// generated are the resources SAM adds to the template it transforms.
var generated = []string{"CallbackFunctionUrl", "CallbackFunctionRole", "CopierFunctionRole", "ReconcilerFunctionRole", "ReaderFunctionUrl", "ReaderFunctionRole",
	"SubmitFunctionUrl", "SubmitFunctionRole", "SubmitterFunctionRole"}

var pseudo = regexp.MustCompile(`^AWS::(AccountId|NoValue|NotificationARNs|Partition|Region|StackId|StackName|URLSuffix)$`)

func TestEveryReferenceResolves(t *testing.T) {
	tpl := load(t)
	known := func(name string) bool {
		return pseudo.MatchString(name) || tpl.At("Parameters", name).OK() || tpl.At("Resources", name).OK() || slices.Contains(generated, name)
	}
	condition := func(name string) {
		if !tpl.At("Conditions", name).OK() {
			t.Errorf("condition %s is not defined", name)
		}
	}
	tpl.Walk(func(n node) {
		switch n.Tag {
		case "!Ref":
			if !known(n.Value) {
				t.Errorf("!Ref %s resolves to nothing", n.Value)
			}
		case "!GetAtt":
			if name, _, _ := strings.Cut(n.Value, "."); !known(name) {
				t.Errorf("!GetAtt %s resolves to nothing", n.Value)
			}
		case "!Sub":
			for _, m := range regexp.MustCompile(`\$\{([^}!]+)\}`).FindAllStringSubmatch(n.Value, -1) {
				if name, _, _ := strings.Cut(m[1], "."); !known(name) {
					t.Errorf("!Sub %s: ${%s} resolves to nothing", n.Value, m[1])
				}
			}
		case "!If":
			condition(n.Items()[0].Value)
		case "!Condition":
			condition(n.Value)
		}
	})
	for _, section := range []string{"Resources", "Outputs"} {
		for _, name := range tpl.At(section).Keys() {
			if c := tpl.At(section, name, "Condition"); c.OK() {
				condition(c.Value)
			}
		}
	}
	for _, name := range tpl.At("Resources").Keys() {
		if typ := tpl.At("Resources", name, "Type").Str(); !regexp.MustCompile(`^AWS::[A-Za-z0-9]+::[A-Za-z0-9]+$`).MatchString(typ) {
			t.Errorf("resource %s has type %q", name, typ)
		}
	}
}

func TestSamconfigHasTheDefaultSections(t *testing.T) {
	b, err := os.ReadFile("../../samconfig.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, section := range []string{"[default.build.parameters]", "[default.deploy.parameters]", "[default.local_invoke.parameters]"} {
		if !strings.Contains(string(b), section) {
			t.Errorf("samconfig.toml lacks %s", section)
		}
	}
	if !strings.Contains(string(b), `env_vars = "events/env.json"`) {
		t.Error("local_invoke must read events/env.json")
	}
}

func TestReaderFunction(t *testing.T) {
	tpl := load(t)
	fn := tpl.At("Resources", "ReaderFunction", "Properties")
	refersToParameter(t, tpl, fn.At("FunctionUrlConfig", "AuthType"), "the reader's FunctionUrlConfig.AuthType")
	if got := tpl.At("Parameters", "ReaderAuthType", "AllowedValues").Strs(); !slices.Equal(got, []string{"NONE", "AWS_IAM"}) {
		t.Errorf("ReaderAuthType allows %v", got)
	}
	t.Run("the reader only reads, and the callback reads nothing of the bucket", func(t *testing.T) {
		if got := allowedActions(fn); !slices.Equal(got, []string{"dynamodb:GetItem", "s3:GetObject", "secretsmanager:GetSecretValue"}) {
			t.Errorf("reader actions %v", got)
		}
		for _, a := range allowedActions(tpl.At("Resources", "CallbackFunction", "Properties")) {
			if strings.HasPrefix(a, "s3:") {
				t.Errorf("the callback may %s", a)
			}
		}
	})
	t.Run("its token comes from the secret the stack makes", func(t *testing.T) {
		env := fn.At("Environment", "Variables")
		if v := env.At("READ_TOKEN_SECRET"); v.Tag != "!Ref" || v.Value != "ReadTokenSecret" {
			t.Errorf("READ_TOKEN_SECRET %s %v", v.Tag, v.Value)
		}
	})
}

func TestForwardingToHTTPS(t *testing.T) {
	tpl := load(t)
	expect(t, tpl, "HasNotifyUrl", "Resources", "NotifyRule", "Condition")
	rule := tpl.At("Resources", "NotifyRule", "Properties")
	target := rule.At("Targets").Items()[0]
	expect(t, target, "$.detail", "InputPath")
	expect(t, target, "86400", "RetryPolicy", "MaximumEventAgeInSeconds")
	expect(t, target, "NotifyDeadLetterQueue.Arn", "DeadLetterConfig", "Arn")
	if got := rule.At("EventPattern", "detail-type").Strs(); !slices.Equal(got, []string{"Task Stored", "Task Failed", "Task Copy Failed", "Task Submitted", "Task Submit Failed", "Task Submit Unknown"}) {
		t.Errorf("detail types %v", got)
	}
	if rate, _ := strconv.Atoi(tpl.At("Resources", "NotifyDestination", "Properties", "InvocationRateLimitPerSecond").Str()); rate < 1 {
		t.Errorf("InvocationRateLimitPerSecond %d", rate)
	}
	expect(t, tpl, "HasNotifyUrl", "Resources", "NotifyHeaderSecret", "Condition")
	if v := tpl.At("Resources", "NotifyConnection", "Properties", "AuthParameters", "ApiKeyAuthParameters", "ApiKeyValue").Value; v != "{{resolve:secretsmanager:${NotifyHeaderSecret}}}" {
		t.Errorf("the header's value %q must be the secret the stack made", v)
	}
	if dims := tpl.At("Resources", "NotifyDeadLetterAlarm", "Properties", "Dimensions").Items(); len(dims) != 1 || dims[0].At("Value").Str() != "NotifyDeadLetterQueue.QueueName" {
		t.Error("no alarm on the notify dead-letter queue")
	}
}

func TestSubmitting(t *testing.T) {
	tpl := load(t)
	for _, name := range []string{"SubmitFunction", "SubmitterFunction", "SubmitQueue", "SubmitDeadLetterQueue", "SubmitFailedAlarm", "CreditsExhaustedAlarm", "SubmitErrorsAlarm", "SubmitDeadLetterAlarm"} {
		t.Run(name+" is deployed only with the platform's API key, which creating tasks needs", func(t *testing.T) {
			expect(t, tpl, "UsesApiKeySecret", "Resources", name, "Condition")
		})
	}
	submit := tpl.At("Resources", "SubmitFunction", "Properties")
	t.Run("the submit function keeps submissions only, and checks the application's token", func(t *testing.T) {
		if got := allowedActions(submit); !slices.Equal(got, []string{"dynamodb:GetItem", "dynamodb:PutItem", "secretsmanager:GetSecretValue", "sqs:SendMessage"}) {
			t.Errorf("actions %v", got)
		}
		if keys := statement(submit, "KeepSubmissions").At("Condition", "ForAllValues:StringLike", "dynamodb:LeadingKeys").Strs(); !slices.Equal(keys, []string{schema.SubmissionKeyPrefix + "*"}) {
			t.Errorf("leading keys %v: a task record is not the submit function's", keys)
		}
		expect(t, submit, "NONE", "FunctionUrlConfig", "AuthType")
	})
	submitter := tpl.At("Resources", "SubmitterFunction", "Properties")
	t.Run("the submitter is fed by its queue, two at a time, reporting each failed message", func(t *testing.T) {
		ev := submitter.At("Events", "SubmitQueueEvent", "Properties")
		expect(t, ev, "SubmitQueue.Arn", "Queue")
		expect(t, ev, "2", "ScalingConfig", "MaximumConcurrency")
		if got := ev.At("FunctionResponseTypes").Strs(); !slices.Equal(got, []string{"ReportBatchItemFailures"}) {
			t.Errorf("FunctionResponseTypes = %v", got)
		}
		if got := allowedActions(submitter); !slices.Equal(got, []string{"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "events:PutEvents", "kms:Decrypt", "secretsmanager:GetSecretValue", "sqs:SendMessage"}) {
			t.Errorf("actions %v", got)
		}
		keys := statement(submitter, "SendSubmissions").At("Condition", "ForAllValues:StringLike", "dynamodb:LeadingKeys").Strs()
		if !slices.Equal(keys, []string{schema.SubmissionKeyPrefix + "*", schema.PaceKeyPrefix + "*", schema.CreditsKeyPrefix + "*"}) {
			t.Errorf("leading keys %v", keys)
		}
	})
	t.Run("a submission message that keeps failing lands in the dead-letter queue", func(t *testing.T) {
		expect(t, tpl, "SubmitDeadLetterQueue.Arn", "Resources", "SubmitQueue", "Properties", "RedrivePolicy", "deadLetterTargetArn")
	})
}

// TestTheLocalStackGivesEachFunctionItsMemory holds the local stack to the
// template's MemorySize (SAM's default 128 MB where a function has none),
// which Lambda and `sam local invoke` pass as AWS_LAMBDA_FUNCTION_MEMORY_SIZE
// and the functions size GOMAXPROCS by (lambdamain.Procs).
func TestTheLocalStackGivesEachFunctionItsMemory(t *testing.T) {
	tpl := load(t)
	resources := tpl.At("Resources")
	seen := 0
	for _, name := range resources.Keys() {
		if resources.At(name, "Type").Str() != "AWS::Serverless::Function" {
			continue
		}
		seen++
		want := 128
		for _, n := range []node{tpl.At("Globals", "Function", "MemorySize"), resources.At(name, "Properties", "MemorySize")} {
			if n.OK() {
				v, err := strconv.Atoi(n.Str())
				if err != nil {
					t.Fatalf("%s: MemorySize %q: %v", name, n.Str(), err)
				}
				want = v
			}
		}
		if got := stack.MemoryMB[name]; got != want {
			t.Errorf("the local stack gives %s %d MB, the template %d", name, got, want)
		}
	}
	if seen != len(stack.MemoryMB)-1 { // and the hello-world baseline
		t.Errorf("the local stack gives memory to %d functions, the template has %d", len(stack.MemoryMB)-1, seen)
	}
}
