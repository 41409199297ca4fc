//go:build kafka

// kafka-mock-broker is a test helper (build tag kafka): it starts librdkafka's
// in-process mock Kafka cluster (confluent-kafka-go MockCluster) listening on
// loopback, pre-creates the given topics, prints
// {"event":"ready","bootstrapServers":"host:port,..."} and serves until stdin
// says {"op":"quit"} (or closes).
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/ocm-ce/interop/common/wire"
)

func main() {
	brokers := flag.Int("brokers", 1, "number of mock brokers")
	topics := flag.String("topics", "", "comma-separated topics to create (1 partition each)")
	partitions := flag.Int("partitions", 1, "partitions per created topic")
	flag.Parse()

	mc, err := kafka.NewMockCluster(*brokers)
	if err != nil {
		wire.Emit(map[string]string{"event": "fatal", "error": err.Error()})
		os.Exit(1)
	}
	defer mc.Close()
	for _, t := range strings.Split(*topics, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if err := mc.CreateTopic(t, *partitions, 1); err != nil {
			wire.Emit(map[string]string{"event": "fatal", "error": fmt.Sprintf("create topic %s: %v", t, err)})
			os.Exit(1)
		}
	}
	wire.Emit(map[string]string{"event": "ready", "bootstrapServers": mc.BootstrapServers()})
	wire.ReadCommands(os.Stdin, func(cmd *wire.Command) bool {
		if cmd.Op == "quit" {
			wire.Reply(cmd, nil, nil, nil)
			return false
		}
		wire.Reply(cmd, fmt.Errorf("unknown op %q", cmd.Op), nil, nil)
		return true
	})
}
