// go-agent-latest is the interop work agent (same behaviour and stdin/stdout
// protocol as interop/go/cmd/go-agent) built on the newest sdk-go release
// (v1.3.0): clients/work + clients/options.GenericClientOptions, gRPC v2
// transport (SubscriptionRequest.data_type, subscription-id header ack,
// heartbeats). Logs go to stderr. The behaviour and the command loop live in
// ../../../common/agent; this file only builds sdk-go v1.3.0's clients.
package main

import (
	"context"
	"fmt"

	workv1 "open-cluster-management.io/api/work/v1"

	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/options"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work"
	agentcodec "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/agent/codec"
	workstore "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/store"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options/builder"

	"github.com/ocm-ce/interop/common/agent"
)

func main() {
	agent.Main(agent.Command{
		Name:             "go-agent-latest",
		DefaultTransport: "grpc",
		TransportHelp:    "transport: grpc (tested) | mqtt (v2 MQTT transport)",
		AgentIDHelp:      "agent ID (client ID)",
		Connect:          connect,
	})
}

func connect(ctx context.Context, flags agent.Flags) (agent.Clients, error) {
	if flags.Transport != "grpc" && flags.Transport != "mqtt" {
		return agent.Clients{}, fmt.Errorf("unsupported --transport %q (grpc|mqtt)", flags.Transport)
	}
	_, config, err := builder.NewConfigLoader(flags.Transport, flags.ConfigFile).LoadConfig()
	if err != nil {
		return agent.Clients{}, fmt.Errorf("load config: %w", err)
	}

	// The agent watcher store keeps its own cache (and local resource
	// versions); the informer consumes its watch.
	watcherStore := workstore.NewAgentInformerWatcherStore()
	clientOptions := options.NewGenericClientOptions[*workv1.ManifestWork](config, agentcodec.NewManifestBundleCodec(), flags.AgentID).
		WithClusterName(flags.Cluster).
		WithClientWatcherStore(watcherStore)
	holder, err := work.NewAgentClientHolder(ctx, clientOptions)
	if err != nil {
		return agent.Clients{}, fmt.Errorf("build agent client holder: %w", err)
	}
	return agent.Clients{
		Works:         holder.WorkInterface(),
		ManifestWorks: holder.ManifestWorks,
	}, nil
}
