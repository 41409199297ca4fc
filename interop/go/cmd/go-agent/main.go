// go-agent is a ManifestWork agent built on the Go sdk-go v0.15.0 CloudEvents
// work client: it behaves like the OCM work agent (finalizer, Applied/Available
// status, finalizer removal on delete) without applying anything. It is driven
// through JSON lines on stdin and reports JSON lines on stdout (see
// ../../README.md). Logs go to stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	workclientset "open-cluster-management.io/api/client/work/clientset/versioned"
	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workinformers "open-cluster-management.io/api/client/work/informers/externalversions"

	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/work"
	agentcodec "open-cluster-management.io/sdk-go/pkg/cloudevents/work/agent/codec"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/work/store"

	"github.com/ocm-ce/interop/common/agent"
	"github.com/ocm-ce/interop/common/wire"
)

func main() {
	var (
		transport  = flag.String("transport", "mqtt", "transport: mqtt|grpc|kafka")
		configFile = flag.String("config", "", "sdk-go config file (YAML/JSON) for the transport")
		cluster    = flag.String("cluster", "", "managed cluster name")
		agentID    = flag.String("agent-id", "", "agent ID (client ID; the MQTT client identifier is <agent-id>-client)")
		qps        = flag.Float64("qps", 0, "publish rate limit, events/s (0 = the SDK's default, 50)")
		burst      = flag.Int("burst", 0, "publish burst (0 = the SDK's default, 100)")
		quiet      = flag.Bool("quiet", false, "print no applied and deleted lines (benchmarks)")
		observeRV  = flag.Bool("observe-resource-version", false,
			"report the applied resource version as observedGeneration when the work has no generation (as ocm-ce agent does), so a source sees an update applied")
	)
	klog.InitFlags(nil)
	flag.Parse()

	limit := options.EventRateLimit{QPS: float32(*qps), Burst: *burst}
	if err := run(*transport, *configFile, *cluster, *agentID, limit, *quiet, *observeRV); err != nil {
		wire.Emit(map[string]string{"event": "fatal", "error": err.Error()})
		klog.Errorf("go-agent: %v", err)
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

func run(transport, configFile, cluster, agentID string, limit options.EventRateLimit, quiet, observeRV bool) error {
	if configFile == "" || cluster == "" || agentID == "" {
		return fmt.Errorf("--config, --cluster and --agent-id are required")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	_, config, err := generic.NewConfigLoader(transport, configFile).LoadConfig()
	if err != nil {
		return fmt.Errorf("load config: %w", err)
	}

	watcherStore := store.NewAgentInformerWatcherStore()
	var (
		clientset workclientset.Interface
		works     func(string) workv1client.ManifestWorkInterface
	)
	if limit.QPS > 0 || limit.Burst > 0 {
		clientset, works, err = manualAgentClient(ctx, config, cluster, agentID, limit, watcherStore)
		if err != nil {
			return err
		}
	} else {
		holder, err := work.NewClientHolderBuilder(config).
			WithClientID(agentID).
			WithClusterName(cluster).
			WithCodecs(agentcodec.NewManifestBundleCodec()).
			WithWorkClientWatcherStore(watcherStore).
			NewAgentClientHolder(ctx)
		if err != nil {
			return fmt.Errorf("build agent client holder: %w", err)
		}
		clientset, works = holder.WorkInterface(), holder.ManifestWorks
	}

	factory := workinformers.NewSharedInformerFactoryWithOptions(clientset, 5*time.Minute,
		workinformers.WithNamespace(cluster))
	informer := factory.Work().V1().ManifestWorks()
	watcherStore.SetStore(informer.Informer().GetStore())

	emit := wire.Emit
	if quiet {
		emit = func(any) {}
	}
	a := agent.New(cluster, works, informer.Lister(), emit)
	a.ObserveResourceVersion = observeRV
	if _, err := informer.Informer().AddEventHandler(a.Handlers()); err != nil {
		return fmt.Errorf("add event handler: %w", err)
	}

	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.Informer().HasSynced) {
		return fmt.Errorf("informer did not sync")
	}
	go a.Run(ctx)

	wire.Emit(map[string]string{"event": "ready"})

	quit := make(chan struct{})
	go func() {
		wire.ReadCommands(os.Stdin, func(cmd *wire.Command) bool {
			switch cmd.Op {
			case "quit":
				wire.Reply(cmd, nil, nil, nil)
				return false
			case "list":
				works, err := a.List()
				if err != nil {
					wire.Reply(cmd, err, nil, nil)
				} else {
					wire.Reply(cmd, nil, nil, works)
				}
			case "set_condition":
				w, err := a.SetCondition(ctx, cmd.Name, metav1.Condition{
					Type: cmd.Type, Status: metav1.ConditionStatus(cmd.Status), Reason: cmd.Reason, Message: cmd.Message,
				})
				if err != nil {
					wire.Reply(cmd, err, nil, nil)
				} else {
					wire.Reply(cmd, nil, w, nil)
				}
			default:
				wire.Reply(cmd, fmt.Errorf("unknown op %q", cmd.Op), nil, nil)
			}
			return true
		})
		close(quit)
	}()

	select {
	case <-quit:
	case <-ctx.Done():
	}
	cancel()
	return nil
}
