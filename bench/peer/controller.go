package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore/types"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// Finalizer is the Rust operator's: added before anything remote exists.
const Finalizer = "evals.agentcore.dev/cleanup"

// AgentCore is the part of the AWS client the reconciler calls.
type AgentCore interface {
	StartBatchEvaluation(context.Context, *bedrockagentcore.StartBatchEvaluationInput, ...func(*bedrockagentcore.Options)) (*bedrockagentcore.StartBatchEvaluationOutput, error)
	GetBatchEvaluation(context.Context, *bedrockagentcore.GetBatchEvaluationInput, ...func(*bedrockagentcore.Options)) (*bedrockagentcore.GetBatchEvaluationOutput, error)
	StopBatchEvaluation(context.Context, *bedrockagentcore.StopBatchEvaluationInput, ...func(*bedrockagentcore.Options)) (*bedrockagentcore.StopBatchEvaluationOutput, error)
	DeleteBatchEvaluation(context.Context, *bedrockagentcore.DeleteBatchEvaluationInput, ...func(*bedrockagentcore.Options)) (*bedrockagentcore.DeleteBatchEvaluationOutput, error)
}

type Reconciler struct {
	client.Client
	AWS          AgentCore
	Region       string
	PollInterval time.Duration
}

// Reconcile takes one step of the lifecycle and requeues while the job runs or is being removed.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var obj BatchEvaluation
	if err := r.Get(ctx, req.NamespacedName, &obj); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !obj.DeletionTimestamp.IsZero() {
		return r.cleanup(ctx, &obj)
	}
	if !controllerutil.ContainsFinalizer(&obj, Finalizer) {
		// A merge patch, not Update: this peer's types hold only part of the spec, and a PUT of
		// them would drop the rest.
		patch := client.MergeFrom(obj.DeepCopy())
		controllerutil.AddFinalizer(&obj, Finalizer)
		return ctrl.Result{}, r.Patch(ctx, &obj, patch)
	}
	if obj.Status.BatchEvaluationID == "" {
		return r.start(ctx, &obj)
	}
	if terminal(obj.Status.RemoteStatus) {
		return ctrl.Result{}, nil
	}
	// Our own status writes come back as watch events and, in controller-runtime's priority
	// queue, replace the requeue the writing reconcile asked for: poll at the interval after the
	// last sync, not now. (lastSyncedAt is a MicroTime: metav1.Time keeps whole seconds.)
	if last := obj.Status.LastSyncedAt; last != nil {
		if wait := r.PollInterval - time.Since(last.Time); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
	}
	return r.poll(ctx, &obj)
}

func (r *Reconciler) start(ctx context.Context, obj *BatchEvaluation) (ctrl.Result, error) {
	if obj.Spec.DataSource.CloudWatchLogs == nil {
		// Only the benchmark's data source is mapped (see README.md).
		r.setCondition(obj, metav1.ConditionFalse, "InvalidSpec", "this peer maps only dataSource.cloudWatchLogs")
		return ctrl.Result{}, r.Status().Update(ctx, obj)
	}
	name := obj.Spec.BatchEvaluationName
	if name == "" {
		name = derivedName(obj.Namespace, obj.Name, string(obj.UID))
	}
	cw := obj.Spec.DataSource.CloudWatchLogs
	input := &bedrockagentcore.StartBatchEvaluationInput{
		BatchEvaluationName: aws.String(name),
		ClientToken:         aws.String("agentcore-peer-" + string(obj.UID)),
		DataSourceConfig: &types.DataSourceConfigMemberCloudWatchLogs{Value: types.CloudWatchLogsSource{
			ServiceNames:         cw.ServiceNames,
			LogGroupNames:        cw.LogGroupNames,
			LogGroupNamePrefixes: cw.LogGroupNamePrefixes,
		}},
	}
	if obj.Spec.Description != "" {
		input.Description = aws.String(obj.Spec.Description)
	}
	for _, e := range obj.Spec.Evaluators {
		input.Evaluators = append(input.Evaluators, types.Evaluator{EvaluatorId: aws.String(e.EvaluatorID)})
	}
	out, err := r.AWS.StartBatchEvaluation(ctx, input)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("StartBatchEvaluation: %w", err)
	}
	now := metav1.Now()
	s := &obj.Status
	s.BatchEvaluationID = aws.ToString(out.BatchEvaluationId)
	s.BatchEvaluationArn = aws.ToString(out.BatchEvaluationArn)
	s.BatchEvaluationName = aws.ToString(out.BatchEvaluationName)
	s.Region = r.Region
	s.StartedAt = &now
	r.observe(obj, out.Status, nil, nil)
	logf.FromContext(ctx).Info("started", "batchEvaluationId", s.BatchEvaluationID)
	if err := r.Status().Update(ctx, obj); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.jittered()}, nil
}

func (r *Reconciler) poll(ctx context.Context, obj *BatchEvaluation) (ctrl.Result, error) {
	out, err := r.AWS.GetBatchEvaluation(ctx, &bedrockagentcore.GetBatchEvaluationInput{
		BatchEvaluationId: aws.String(obj.Status.BatchEvaluationID),
	})
	if notFound(err) {
		obj.Status.RemoteStatus = "NOT_FOUND"
		r.setCondition(obj, metav1.ConditionFalse, "RemoteDeleted", "the job no longer exists")
		return ctrl.Result{}, r.Status().Update(ctx, obj)
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("GetBatchEvaluation: %w", err)
	}
	before := obj.DeepCopy()
	r.observe(obj, out.Status, out.EvaluationResults, out.ErrorDetails)
	if !statusChanged(&before.Status, &obj.Status) {
		return ctrl.Result{RequeueAfter: r.jittered()}, nil
	}
	if err := r.Status().Update(ctx, obj); err != nil {
		return ctrl.Result{}, err
	}
	if terminal(obj.Status.RemoteStatus) {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{RequeueAfter: r.jittered()}, nil
}

// cleanup: Stop if running, wait until terminal, Delete, wait for 404, then release.
func (r *Reconciler) cleanup(ctx context.Context, obj *BatchEvaluation) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(obj, Finalizer) {
		return ctrl.Result{}, nil
	}
	id := obj.Status.BatchEvaluationID
	if id == "" {
		return ctrl.Result{}, r.release(ctx, obj)
	}
	out, err := r.AWS.GetBatchEvaluation(ctx, &bedrockagentcore.GetBatchEvaluationInput{BatchEvaluationId: aws.String(id)})
	if notFound(err) {
		return ctrl.Result{}, r.release(ctx, obj)
	}
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("GetBatchEvaluation: %w", err)
	}
	switch status := string(out.Status); {
	case status == "PENDING" || status == "IN_PROGRESS":
		_, err = r.AWS.StopBatchEvaluation(ctx, &bedrockagentcore.StopBatchEvaluationInput{BatchEvaluationId: aws.String(id)})
	case terminal(status):
		_, err = r.AWS.DeleteBatchEvaluation(ctx, &bedrockagentcore.DeleteBatchEvaluationInput{BatchEvaluationId: aws.String(id)})
		if err == nil {
			logf.FromContext(ctx).Info("delete requested", "batchEvaluationId", id)
		}
	}
	// STOPPING and DELETING: wait. A 409 means the job moved on: read it again next time.
	var conflict *types.ConflictException
	if err != nil && !errors.As(err, &conflict) && !notFound(err) {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: min(r.PollInterval, 5*time.Second)}, nil
}

func (r *Reconciler) release(ctx context.Context, obj *BatchEvaluation) error {
	patch := client.MergeFrom(obj.DeepCopy())
	controllerutil.RemoveFinalizer(obj, Finalizer)
	if err := r.Patch(ctx, obj, patch); err != nil {
		return err
	}
	logf.FromContext(ctx).Info("released", "batchEvaluationId", obj.Status.BatchEvaluationID)
	return nil
}

// observe records the remote state in the status and derives the Ready condition from it.
func (r *Reconciler) observe(obj *BatchEvaluation, status types.BatchEvaluationStatus, results *types.EvaluationJobResults, errorDetails []string) {
	s := &obj.Status
	s.RemoteStatus = string(status)
	s.ObservedGeneration = obj.Generation
	now := metav1.Now()
	synced := metav1.NewMicroTime(now.Time)
	s.LastSyncedAt = &synced
	if results != nil {
		s.Results = convertResults(results)
		s.Sessions = fmt.Sprintf("%d/%d", s.Results.SessionsCompleted, s.Results.TotalSessions)
		s.AverageScore = meanScore(s.Results.Evaluators)
	}
	s.ErrorDetails = strings.Join(errorDetails, "; ")
	switch status {
	case types.BatchEvaluationStatusCompleted, types.BatchEvaluationStatusCompletedWithErrors:
		s.CompletedAt = &now
		r.setCondition(obj, metav1.ConditionTrue, "Completed", "the job finished: "+string(status))
	case types.BatchEvaluationStatusFailed, types.BatchEvaluationStatusStopped:
		s.CompletedAt = &now
		r.setCondition(obj, metav1.ConditionFalse, reason(status), "the job ended: "+string(status))
	default:
		r.setCondition(obj, metav1.ConditionFalse, reason(status), "the job is "+string(status))
	}
}

func (r *Reconciler) setCondition(obj *BatchEvaluation, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&obj.Status.Conditions, metav1.Condition{
		Type: "Ready", Status: status, Reason: reason, Message: message, ObservedGeneration: obj.Generation,
	})
}

// statusChanged ignores lastSyncedAt, so an unchanged poll writes nothing.
func statusChanged(before, after *BatchEvaluationStatus) bool {
	b, a := *before, *after
	b.LastSyncedAt, a.LastSyncedAt = nil, nil
	b.CompletedAt, a.CompletedAt = nil, nil
	return !equality.Semantic.DeepEqual(b, a)
}

func (r *Reconciler) jittered() time.Duration {
	return time.Duration(float64(r.PollInterval) * (0.9 + 0.2*rand.Float64()))
}

func terminal(status string) bool {
	switch status {
	case "COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "STOPPED":
		return true
	}
	return false
}

func notFound(err error) bool {
	var nf *types.ResourceNotFoundException
	return errors.As(err, &nf)
}

// reason turns IN_PROGRESS into InProgress (condition reasons are CamelCase).
func reason(status types.BatchEvaluationStatus) string {
	var b strings.Builder
	for word := range strings.SplitSeq(strings.ToLower(string(status)), "_") {
		if word != "" {
			b.WriteString(strings.ToUpper(word[:1]) + word[1:])
		}
	}
	if b.Len() == 0 {
		return "Unknown"
	}
	return b.String()
}

// derivedName follows the Rust operator: <namespace>_<name>_<8 characters of the UID>, within
// the service's pattern [a-zA-Z][a-zA-Z0-9_]{0,47}.
func derivedName(namespace, name, uid string) string {
	sanitize := func(s string) string {
		return strings.Map(func(c rune) rune {
			if c < 128 && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
				return c
			}
			return '_'
		}, s)
	}
	fragment := strings.ReplaceAll(sanitize(uid), "_", "")
	fragment = fragment[:min(8, len(fragment))]
	base := sanitize(namespace + "_" + name)
	if c := base[0]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		base = "k" + base
	}
	base = base[:min(len(base), 48-len(fragment)-1)]
	return base + "_" + fragment
}

func convertResults(in *types.EvaluationJobResults) *Results {
	out := &Results{
		TotalSessions:      aws.ToInt32(in.TotalNumberOfSessions),
		SessionsCompleted:  aws.ToInt32(in.NumberOfSessionsCompleted),
		SessionsInProgress: aws.ToInt32(in.NumberOfSessionsInProgress),
		SessionsFailed:     aws.ToInt32(in.NumberOfSessionsFailed),
		SessionsIgnored:    aws.ToInt32(in.NumberOfSessionsIgnored),
	}
	for _, e := range in.EvaluatorSummaries {
		res := EvaluatorResult{
			EvaluatorID:    aws.ToString(e.EvaluatorId),
			Dimension:      aws.ToString(e.EvaluationDimensionName),
			TotalEvaluated: aws.ToInt32(e.TotalEvaluated),
			TotalFailed:    aws.ToInt32(e.TotalFailed),
		}
		if e.Statistics != nil {
			res.AverageScore = copyFloat(e.Statistics.AverageScore)
		}
		out.Evaluators = append(out.Evaluators, res)
	}
	return out
}

func meanScore(evaluators []EvaluatorResult) *float64 {
	var sum float64
	var n int
	for _, e := range evaluators {
		if e.AverageScore != nil {
			sum += *e.AverageScore
			n++
		}
	}
	if n == 0 {
		return nil
	}
	mean := sum / float64(n)
	return &mean
}
