package main

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion of the BatchEvaluation CRD (crds/evals.agentcore.dev_batchevaluations.yaml).
var GroupVersion = schema.GroupVersion{Group: "evals.agentcore.dev", Version: "v1alpha1"}

// addToScheme registers the two types the controller reads.
func addToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &BatchEvaluation{}, &BatchEvaluationList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// BatchEvaluation holds the subset of the CRD this peer maps: enough for the benchmark's
// objects (a CloudWatch Logs source and evaluators). Unknown spec fields are ignored on read.
type BatchEvaluation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BatchEvaluationSpec   `json:"spec"`
	Status BatchEvaluationStatus `json:"status,omitempty"`
}

type BatchEvaluationSpec struct {
	BatchEvaluationName string         `json:"batchEvaluationName,omitempty"`
	Description         string         `json:"description,omitempty"`
	Evaluators          []EvaluatorRef `json:"evaluators,omitempty"`
	DataSource          DataSource     `json:"dataSource"`
}

type EvaluatorRef struct {
	EvaluatorID string `json:"evaluatorId"`
}

type DataSource struct {
	CloudWatchLogs *CloudWatchLogs `json:"cloudWatchLogs,omitempty"`
}

type CloudWatchLogs struct {
	ServiceNames         []string `json:"serviceNames,omitempty"`
	LogGroupNames        []string `json:"logGroupNames,omitempty"`
	LogGroupNamePrefixes []string `json:"logGroupNamePrefixes,omitempty"`
}

// BatchEvaluationStatus carries the fields the Rust operator writes at the same moments, so both
// store objects of similar size; the benchmark's watch reads batchEvaluationId and Ready.
type BatchEvaluationStatus struct {
	ObservedGeneration  int64              `json:"observedGeneration"`
	BatchEvaluationID   string             `json:"batchEvaluationId,omitempty"`
	BatchEvaluationArn  string             `json:"batchEvaluationArn,omitempty"`
	BatchEvaluationName string             `json:"batchEvaluationName,omitempty"`
	Region              string             `json:"region,omitempty"`
	RemoteStatus        string             `json:"remoteStatus,omitempty"`
	StartedAt           *metav1.Time       `json:"startedAt,omitempty"`
	CompletedAt         *metav1.Time       `json:"completedAt,omitempty"`
	LastSyncedAt        *metav1.MicroTime  `json:"lastSyncedAt,omitempty"`
	Sessions            string             `json:"sessions,omitempty"`
	AverageScore        *float64           `json:"averageScore,omitempty"`
	Results             *Results           `json:"results,omitempty"`
	ErrorDetails        string             `json:"errorDetails,omitempty"`
	Conditions          []metav1.Condition `json:"conditions,omitempty"`
}

type Results struct {
	TotalSessions      int32             `json:"totalSessions"`
	SessionsCompleted  int32             `json:"sessionsCompleted"`
	SessionsInProgress int32             `json:"sessionsInProgress"`
	SessionsFailed     int32             `json:"sessionsFailed"`
	SessionsIgnored    int32             `json:"sessionsIgnored"`
	Evaluators         []EvaluatorResult `json:"evaluators,omitempty"`
}

type EvaluatorResult struct {
	EvaluatorID    string   `json:"evaluatorId,omitempty"`
	Dimension      string   `json:"dimension,omitempty"`
	AverageScore   *float64 `json:"averageScore,omitempty"`
	TotalEvaluated int32    `json:"totalEvaluated"`
	TotalFailed    int32    `json:"totalFailed"`
}

type BatchEvaluationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BatchEvaluation `json:"items"`
}

// Deep copies, written by hand in place of controller-gen's zz_generated.deepcopy.go (the types
// are small; a generator would be one more tool to build).

func (in *BatchEvaluation) DeepCopyObject() runtime.Object { return in.DeepCopy() }

func (in *BatchEvaluation) DeepCopy() *BatchEvaluation {
	if in == nil {
		return nil
	}
	out := new(BatchEvaluation)
	in.DeepCopyInto(out)
	return out
}

func (in *BatchEvaluation) DeepCopyInto(out *BatchEvaluation) {
	*out = *in
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec.Evaluators = slices.Clone(in.Spec.Evaluators)
	if cw := in.Spec.DataSource.CloudWatchLogs; cw != nil {
		out.Spec.DataSource.CloudWatchLogs = &CloudWatchLogs{
			ServiceNames:         slices.Clone(cw.ServiceNames),
			LogGroupNames:        slices.Clone(cw.LogGroupNames),
			LogGroupNamePrefixes: slices.Clone(cw.LogGroupNamePrefixes),
		}
	}
	s, o := &in.Status, &out.Status
	o.StartedAt = s.StartedAt.DeepCopy()
	o.CompletedAt = s.CompletedAt.DeepCopy()
	o.LastSyncedAt = s.LastSyncedAt.DeepCopy()
	o.AverageScore = copyFloat(s.AverageScore)
	if s.Results != nil {
		r := *s.Results
		r.Evaluators = make([]EvaluatorResult, len(s.Results.Evaluators))
		for i, e := range s.Results.Evaluators {
			e.AverageScore = copyFloat(e.AverageScore)
			r.Evaluators[i] = e
		}
		o.Results = &r
	}
	o.Conditions = make([]metav1.Condition, len(s.Conditions))
	for i := range s.Conditions {
		s.Conditions[i].DeepCopyInto(&o.Conditions[i])
	}
}

func (in *BatchEvaluationList) DeepCopyObject() runtime.Object {
	if in == nil {
		return nil
	}
	out := new(BatchEvaluationList)
	*out = *in
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	out.Items = make([]BatchEvaluation, len(in.Items))
	for i := range in.Items {
		in.Items[i].DeepCopyInto(&out.Items[i])
	}
	return out
}

func copyFloat(f *float64) *float64 {
	if f == nil {
		return nil
	}
	v := *f
	return &v
}
