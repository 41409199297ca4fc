// go-agent is a ManifestWork agent built on the Go sdk-go v0.15.0 CloudEvents
// work client: it behaves like the OCM work agent (finalizer, Applied/Available
// status, finalizer removal on delete) without applying anything. It is driven
// through JSON lines on stdin and reports JSON lines on stdout (see
// ../../README.md). Logs go to stderr. The behaviour and the command loop live
// in ../../../common/agent; this file only builds sdk-go v0.15.0's clients.
package main

import (
	"context"
	"fmt"

	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/work"
	agentcodec "open-cluster-management.io/sdk-go/pkg/cloudevents/work/agent/codec"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/work/store"

	"github.com/ocm-ce/interop/common/agent"
)

func main() {
	agent.Main(agent.Command{
		Name:             "go-agent",
		DefaultTransport: "mqtt",
		TransportHelp:    "transport: mqtt|grpc|kafka",
		AgentIDHelp:      "agent ID (client ID; the MQTT client identifier is <agent-id>-client)",
		Connect:          connect,
	})
}

func connect(ctx context.Context, flags agent.Flags) (agent.Clients, error) {
	_, config, err := generic.NewConfigLoader(flags.Transport, flags.ConfigFile).LoadConfig()
	if err != nil {
		return agent.Clients{}, fmt.Errorf("load config: %w", err)
	}

	watcherStore := store.NewAgentInformerWatcherStore()
	if flags.QPS > 0 || flags.Burst > 0 {
		limit := options.EventRateLimit{QPS: float32(flags.QPS), Burst: flags.Burst}
		clientset, works, err := manualAgentClient(ctx, config, flags.Cluster, flags.AgentID, limit, watcherStore)
		if err != nil {
			return agent.Clients{}, err
		}
		return agent.Clients{Works: clientset, ManifestWorks: works, SetStore: watcherStore.SetStore}, nil
	}
	holder, err := work.NewClientHolderBuilder(config).
		WithClientID(flags.AgentID).
		WithClusterName(flags.Cluster).
		WithCodecs(agentcodec.NewManifestBundleCodec()).
		WithWorkClientWatcherStore(watcherStore).
		NewAgentClientHolder(ctx)
	if err != nil {
		return agent.Clients{}, fmt.Errorf("build agent client holder: %w", err)
	}
	return agent.Clients{
		Works:         holder.WorkInterface(),
		ManifestWorks: holder.ManifestWorks,
		SetStore:      watcherStore.SetStore,
	}, nil
}
