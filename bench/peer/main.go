// Command peer is a controller-runtime operator for BatchEvaluation objects, the benchmark's
// side-by-side peer of the Rust operator (see README.md). It is a measuring instrument, not a
// product.
package main

import (
	"context"
	"flag"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentcore"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

func main() {
	var (
		endpoint, region, metricsAddr string
		pollInterval                  time.Duration
		concurrency                   int
	)
	flag.StringVar(&endpoint, "aws-endpoint-url", "", "AgentCore endpoint override (the emulator); empty: the SDK's default")
	flag.StringVar(&region, "aws-region", "", "AWS region; empty: from the environment")
	flag.DurationVar(&pollInterval, "poll-interval", 30*time.Second, "how often a running job is polled")
	flag.IntVar(&concurrency, "max-concurrent-reconciles", 1, "reconciles in flight")
	flag.StringVar(&metricsAddr, "metrics-bind-address", "0", "metrics address; 0 disables")
	opts := zap.Options{} // production: JSON at info
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		fail(log.Error, err, "scheme")
	}
	if err := addToScheme(scheme); err != nil {
		fail(log.Error, err, "scheme")
	}

	ctx := ctrl.SetupSignalHandler()
	awsClient, resolvedRegion, err := newAgentCore(ctx, endpoint, region)
	if err != nil {
		fail(log.Error, err, "AWS configuration")
	}

	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:  scheme,
		Metrics: metricsserver.Options{BindAddress: metricsAddr},
	})
	if err != nil {
		fail(log.Error, err, "manager")
	}
	r := &Reconciler{Client: mgr.GetClient(), AWS: awsClient, Region: resolvedRegion, PollInterval: pollInterval}
	err = ctrl.NewControllerManagedBy(mgr).
		For(&BatchEvaluation{}).
		Named("batchevaluation").
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency}).
		Complete(r)
	if err != nil {
		fail(log.Error, err, "controller")
	}
	log.Info("starting manager", "pollInterval", pollInterval.String(), "maxConcurrentReconciles", concurrency)
	if err := mgr.Start(ctx); err != nil {
		fail(log.Error, err, "manager stopped")
	}
}

// newAgentCore loads the default credential chain (the benchmark gives static fake keys in the
// environment) and points the client at the endpoint override.
func newAgentCore(ctx context.Context, endpoint, region string) (*bedrockagentcore.Client, string, error) {
	var loadOpts []func(*config.LoadOptions) error
	if region != "" {
		loadOpts = append(loadOpts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, "", err
	}
	client := bedrockagentcore.NewFromConfig(cfg, func(o *bedrockagentcore.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	return client, cfg.Region, nil
}

func fail(logError func(error, string, ...any), err error, msg string) {
	logError(err, msg)
	os.Exit(1)
}
