package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/adapters/logsink"
	"github.com/wa2genesys/connectorcache/internal/webhook"
)

// listenAddr waits for the "connector listening" log line in the logs
// read from r, and returns its address. Every line is also copied to logs.
func listenAddr(t *testing.T, r io.Reader, logs *syncBuffer) string {
	t.Helper()
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			fmt.Fprintln(logs, sc.Text())
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "connector listening" {
				select {
				case found <- line.Addr:
				default:
				}
			}
		}
	}()
	select {
	case addr := <-found:
		return addr
	case <-time.After(30 * time.Second):
		t.Fatalf("the connector did not log that it listens; its logs:\n%s", logs)
	}
	return ""
}

// TestBinary_DevConfigSampleAndSIGTERM runs the connector as `make run`
// does, as a process of its own: the sample is accepted then skipped as a
// duplicate, stdout carries exactly the one delivered message, and SIGTERM
// ends the process cleanly.
func TestBinary_DevConfigSampleAndSIGTERM(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-config", "dev.yaml")
	cmd.Env = append(os.Environ(), runMainEnv+"=1", "HTTP_ADDR=127.0.0.1:0", "STORE=memory", "DELIVERY=log",
		"WHATSAPP_APP_SECRET=", "LOG_LEVEL=info")
	var stdout syncBuffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	logs := &syncBuffer{}
	addr := listenAddr(t, stderr, logs)
	go func() { exited <- cmd.Wait() }()

	clearHostEnv(t)
	var out, errOut bytes.Buffer
	err = run(context.Background(), []string{"sample", "-config", "dev.yaml", "-url", "http://" + addr,
		"-file", "../../testdata/whatsapp/text-message.json"}, &out, &errOut)
	if err != nil {
		t.Fatalf("sample: %v\n%s%s", err, out.String(), errOut.String())
	}
	answers := out.String()
	for _, want := range []string{`#1: 200 OK {"delivered":1,"duplicates":0`, `#2: 200 OK {"delivered":0,"duplicates":1`} {
		if !strings.Contains(answers, want) {
			t.Errorf("sample output lacks %q:\n%s", want, answers)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("connector exited with %v after SIGTERM, want a clean exit\n%s", err, logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("connector still running 20s after SIGTERM\n%s", logs)
	}

	lines := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("stdout = %q, want exactly one JSON line", stdout.String())
	}
	var line logsink.Line
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil || line.MessageID != wamidText || line.Tenant != "demo" {
		t.Errorf("stdout line %q (%v), want the sample message for tenant demo", lines[0], err)
	}
	for _, want := range []string{`"msg":"duplicate skipped"`, `"msg":"shutting down"`, `"msg":"stopped"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("stderr lacks %s:\n%s", want, logs)
		}
	}
}

// TestServe_ShutdownFinishesInFlightRequests cancels the connector's
// context (as SIGTERM does) while a delivery is in flight: the request is
// answered, then serve returns.
func TestServe_ShutdownFinishesInFlightRequests(t *testing.T) {
	clearHostEnv(t)
	g := newGenesysAPI(t)
	hold := make(chan struct{})
	arrived := make(chan struct{}, 1)
	g.mu.Lock()
	g.hold, g.arrived = hold, arrived
	g.mu.Unlock()

	t.Setenv("HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("STORE", "memory")
	t.Setenv("GENESYS_LOGIN_URL", g.login.URL)
	t.Setenv("GENESYS_API_URL", g.api.URL)
	path := writeConfig(t, fmt.Sprintf(`
delivery: genesys
whatsapp: {app_secret: %s}
tenants:
  - id: acme
    verify_token: vt
    genesys: {client_id: %s, client_secret: %s, integration_id: %s}
`, e2eAppSecret, e2eClientID, e2eClientSecret, e2eIntegration))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, []string{"-config", path}, io.Discard, pw)
		pw.Close()
	}()
	logs := &syncBuffer{}
	addr := listenAddr(t, pr, logs)

	body := readFixture(t, "text-message.json")
	answered := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhook/acme", bytes.NewReader(body))
		req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(e2eAppSecret), body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the delivery never reached Genesys")
	}
	cancel() // as SIGTERM does

	select {
	case err := <-served:
		t.Fatalf("serve returned (%v) with a request in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(hold)
	if status := <-answered; status != http.StatusOK {
		t.Errorf("in-flight request answered %d, want 200", status)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not return after the in-flight request")
	}
	if got := g.deliveredIDs(); got[wamidText] != 1 {
		t.Errorf("Genesys messages = %v, want the in-flight one", got)
	}
}
