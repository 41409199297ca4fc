//go:build !kafka

// kafka-mock-broker needs the kafka build tag (cgo, librdkafka).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "kafka-mock-broker: built without -tags kafka")
	os.Exit(2)
}
