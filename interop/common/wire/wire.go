// Package wire implements the JSON-lines stdin/stdout protocol shared by the
// interop programs: commands are read from stdin (one JSON object a line),
// events and results are written to stdout (one JSON object a line). Logs go
// to stderr only.
package wire

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// Command is one stdin line. Fields not used by an op are ignored.
type Command struct {
	ID        json.RawMessage `json:"id,omitempty"`
	Op        string          `json:"op"`
	Work      json.RawMessage `json:"work,omitempty"`
	Namespace string          `json:"namespace,omitempty"`
	Name      string          `json:"name,omitempty"`
	PatchType string          `json:"patchType,omitempty"`
	Patch     json.RawMessage `json:"patch,omitempty"`
	Cluster   *string         `json:"cluster,omitempty"`

	// lifecycle (go-source): the plan, see go-source's lifecycle.go
	Lifecycle json.RawMessage `json:"lifecycle,omitempty"`

	// set_condition (agent)
	Type    string `json:"type,omitempty"`
	Status  string `json:"status,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// Result is the answer to one command.
type Result struct {
	Event string          `json:"event"`
	ID    json.RawMessage `json:"id"`
	Op    string          `json:"op"`
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Work  any             `json:"work,omitempty"`
	Works any             `json:"works,omitempty"`
}

var (
	outMu sync.Mutex
	out   = bufio.NewWriter(os.Stdout)
)

// Emit writes one JSON object as one stdout line and flushes.
func Emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"event": "error", "error": fmt.Sprintf("marshal: %v", err)})
	}
	outMu.Lock()
	defer outMu.Unlock()
	_, _ = out.Write(b)
	_ = out.WriteByte('\n')
	_ = out.Flush()
}

// Reply emits the result line for cmd.
func Reply(cmd *Command, err error, work any, works any) {
	id := cmd.ID
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	r := Result{Event: "result", ID: id, Op: cmd.Op, OK: err == nil, Work: work, Works: works}
	if err != nil {
		r.Error = err.Error()
	}
	Emit(r)
}

// ReadCommands reads JSON-lines commands from r and calls handle for each one
// (sequentially) until handle returns false or r ends. A line that is not
// valid JSON is answered with a failed result with op "invalid".
func ReadCommands(r io.Reader, handle func(*Command) bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 {
			continue
		}
		cmd := &Command{}
		if err := json.Unmarshal(line, cmd); err != nil {
			Reply(&Command{Op: "invalid"}, fmt.Errorf("invalid command: %v", err), nil, nil)
			continue
		}
		if !handle(cmd) {
			return
		}
	}
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory and a rename.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
