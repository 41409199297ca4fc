package agent

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

	"github.com/ocm-ce/interop/common/wire"
)

// Flags is the command line of an interop agent.
type Flags struct {
	// Transport is mqtt, grpc or kafka.
	Transport string
	// ConfigFile is the sdk-go config file (YAML/JSON) of the transport.
	ConfigFile string
	// Cluster is the managed cluster name.
	Cluster string
	// AgentID is the client ID.
	AgentID string
	// QPS and Burst are the publish rate limit (0 = the SDK's defaults, 50 and 100).
	QPS   float64
	Burst int
	// Quiet prints no applied and deleted lines (benchmarks).
	Quiet bool
	// ObserveResourceVersion reports the applied resource version as observedGeneration when
	// the work has no generation (see Agent.ObserveResourceVersion).
	ObserveResourceVersion bool
}

// Clients is what an SDK's work client holder gives the agent.
type Clients struct {
	// Works is the holder's ManifestWork clientset (WorkInterface()), which
	// the informer lists and watches.
	Works workclientset.Interface
	// ManifestWorks is the holder's ManifestWorks(namespace), which the agent
	// patches.
	ManifestWorks func(namespace string) workv1client.ManifestWorkInterface
	// SetStore hands the informer's store to the SDK's watcher store; nil when
	// the watcher store keeps its own cache.
	SetStore func(cache.Store)
}

// Command describes one agent program: its name (for logs), the help of its
// flags, and how it builds the SDK's work clients.
type Command struct {
	Name             string
	DefaultTransport string
	TransportHelp    string
	AgentIDHelp      string
	// Connect builds the SDK's agent work clients; it may refuse a transport.
	Connect func(ctx context.Context, flags Flags) (Clients, error)
}

// Main parses the flags, runs the agent and exits the process: JSON lines on
// stdout (a "ready" event, then replies to the commands on stdin, or a "fatal"
// event), logs on stderr.
func Main(c Command) {
	var flags Flags
	flag.StringVar(&flags.Transport, "transport", c.DefaultTransport, c.TransportHelp)
	flag.StringVar(&flags.ConfigFile, "config", "", "sdk-go config file (YAML/JSON) for the transport")
	flag.StringVar(&flags.Cluster, "cluster", "", "managed cluster name")
	flag.StringVar(&flags.AgentID, "agent-id", "", c.AgentIDHelp)
	flag.Float64Var(&flags.QPS, "qps", 0, "publish rate limit, events/s (0 = the SDK's default, 50)")
	flag.IntVar(&flags.Burst, "burst", 0, "publish burst (0 = the SDK's default, 100)")
	flag.BoolVar(&flags.Quiet, "quiet", false, "print no applied and deleted lines (benchmarks)")
	flag.BoolVar(&flags.ObserveResourceVersion, "observe-resource-version", false,
		"report the applied resource version as observedGeneration when the work has no generation (as ocm-ce agent does), so a source sees an update applied")
	klog.InitFlags(nil)
	flag.Parse()

	if err := c.run(flags); err != nil {
		wire.Emit(map[string]string{"event": "fatal", "error": err.Error()})
		klog.Errorf("%s: %v", c.Name, err)
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

func (c Command) run(flags Flags) error {
	if flags.ConfigFile == "" || flags.Cluster == "" || flags.AgentID == "" {
		return fmt.Errorf("--config, --cluster and --agent-id are required")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	clients, err := c.Connect(ctx, flags)
	if err != nil {
		return err
	}

	cluster := flags.Cluster
	factory := workinformers.NewSharedInformerFactoryWithOptions(clients.Works, 5*time.Minute,
		workinformers.WithNamespace(cluster))
	informer := factory.Work().V1().ManifestWorks()
	if clients.SetStore != nil {
		clients.SetStore(informer.Informer().GetStore())
	}

	emit := wire.Emit
	if flags.Quiet {
		emit = func(any) {}
	}
	a := New(cluster, clients.ManifestWorks, informer.Lister(), emit)
	a.ObserveResourceVersion = flags.ObserveResourceVersion
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
