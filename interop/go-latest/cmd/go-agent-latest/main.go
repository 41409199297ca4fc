// go-agent-latest is the interop work agent (same behaviour and stdin/stdout
// protocol as interop/go/cmd/go-agent) built on the newest sdk-go release
// (v1.3.0): clients/work + clients/options.GenericClientOptions, gRPC v2
// transport (SubscriptionRequest.data_type, subscription-id header ack,
// heartbeats). Logs go to stderr.
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

	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workinformers "open-cluster-management.io/api/client/work/informers/externalversions"
	workv1 "open-cluster-management.io/api/work/v1"

	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/options"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work"
	agentcodec "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/agent/codec"
	workstore "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/store"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options/builder"

	"github.com/ocm-ce/interop/common/agent"
	"github.com/ocm-ce/interop/common/wire"
)

func main() {
	var (
		transport  = flag.String("transport", "grpc", "transport: grpc (tested) | mqtt (v2 MQTT transport)")
		configFile = flag.String("config", "", "sdk-go config file (YAML/JSON) for the transport")
		cluster    = flag.String("cluster", "", "managed cluster name")
		agentID    = flag.String("agent-id", "", "agent ID (client ID)")
	)
	klog.InitFlags(nil)
	flag.Parse()

	if err := run(*transport, *configFile, *cluster, *agentID); err != nil {
		wire.Emit(map[string]string{"event": "fatal", "error": err.Error()})
		klog.Errorf("go-agent-latest: %v", err)
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

func run(transport, configFile, cluster, agentID string) error {
	if configFile == "" || cluster == "" || agentID == "" {
		return fmt.Errorf("--config, --cluster and --agent-id are required")
	}
	if transport != "grpc" && transport != "mqtt" {
		return fmt.Errorf("unsupported --transport %q (grpc|mqtt)", transport)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	_, config, err := builder.NewConfigLoader(transport, configFile).LoadConfig()
	if err != nil {
		return fmt.Errorf("load config: %w", err)
	}

	// The agent watcher store keeps its own cache (and local resource
	// versions); the informer below consumes its watch.
	watcherStore := workstore.NewAgentInformerWatcherStore()
	clientOptions := options.NewGenericClientOptions[*workv1.ManifestWork](config, agentcodec.NewManifestBundleCodec(), agentID).
		WithClusterName(cluster).
		WithClientWatcherStore(watcherStore)
	holder, err := work.NewAgentClientHolder(ctx, clientOptions)
	if err != nil {
		return fmt.Errorf("build agent client holder: %w", err)
	}

	factory := workinformers.NewSharedInformerFactoryWithOptions(holder.WorkInterface(), 5*time.Minute,
		workinformers.WithNamespace(cluster))
	informer := factory.Work().V1().ManifestWorks()

	a := agent.New(cluster, func(ns string) workv1client.ManifestWorkInterface { return holder.ManifestWorks(ns) },
		informer.Lister(), wire.Emit)
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
