package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wa2genesys/connectorcache/adapters/logsink"
	"github.com/wa2genesys/connectorcache/internal/contract"
	"github.com/wa2genesys/connectorcache/internal/redistest"
	"github.com/wa2genesys/connectorcache/internal/webhook"
)

// listenAddr waits for the "connector listening" log line in the logs
// read from r, and returns its address. Every line is also copied to logs.
func listenAddr(t *testing.T, r io.Reader, logs *syncBuffer) string {
	t.Helper()
	addr, _ := listenAddrs(t, r, logs)
	return addr
}

// listenAddrs is listenAddr that also returns the admin listener's
// address, "" when there is none.
func listenAddrs(t *testing.T, r io.Reader, logs *syncBuffer) (addr, adminAddr string) {
	t.Helper()
	type listening struct {
		Msg       string
		Addr      string
		AdminAddr string `json:"admin_addr"`
	}
	found := make(chan listening, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			fmt.Fprintln(logs, sc.Text())
			var line listening
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "connector listening" {
				select {
				case found <- line:
				default:
				}
			}
		}
	}()
	select {
	case line := <-found:
		return line.Addr, line.AdminAddr
	case <-time.After(30 * time.Second):
		t.Fatalf("the connector did not log that it listens; its logs:\n%s", logs)
	}
	return "", ""
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
    verify_token: %s
    whatsapp: {waba_ids: [%q]}
    genesys: {client_id: %s, client_secret: %s, integration_id: %s}
`, e2eAppSecret, e2eVerifyToken, e2eWABAID, e2eClientID, e2eClientSecret, e2eIntegration))

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

// blockingWriter is a standard output that holds the first write until
// release is closed, signalling on entered when it gets there, then fails
// it: a log delivery stuck past the shutdown timeout, then failing.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered) })
	<-w.release
	return 0, errors.New("stdout closed")
}

// TestServe_ShutdownTimeoutClosesTheStoreAfterTheHandlers cancels the
// connector's context while a delivery is stuck past http.shutdown_timeout:
// serve must not close the store until the handler, its delivery failed,
// has released its claim, so that Meta's redelivery finds the message free.
func TestServe_ShutdownTimeoutClosesTheStoreAfterTheHandlers(t *testing.T) {
	clearHostEnv(t)
	redisURL := redistest.SharedURL(t)
	tenant := contract.TenantID(t)
	t.Setenv("HTTP_ADDR", "127.0.0.1:0")
	t.Setenv("HTTP_SHUTDOWN_TIMEOUT", "2s")
	t.Setenv("STORE", "redis")
	t.Setenv("REDIS_URL", redisURL)
	path := writeConfig(t, fmt.Sprintf(`
delivery: log
whatsapp: {app_secret: %s}
tenants:
  - id: %s
    verify_token: %s
    whatsapp: {waba_ids: [%q]}
`, e2eAppSecret, tenant, e2eVerifyToken, e2eWABAID))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	pr, pw := io.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, []string{"-config", path}, stdout, pw)
		pw.Close()
	}()
	logs := &syncBuffer{}
	addr := listenAddr(t, pr, logs)

	body := readFixture(t, "text-message.json")
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhook/"+tenant, bytes.NewReader(body))
		req.Header.Set(webhook.SignatureHeader, webhook.Sign([]byte(e2eAppSecret), body))
		if resp, err := http.DefaultClient.Do(req); err == nil { // the shutdown closes the connection
			resp.Body.Close()
		}
	}()
	select {
	case <-stdout.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the delivery never started")
	}
	if keys := dedupeKeys(t, redisURL, tenant); len(keys) != 1 {
		t.Fatalf("dedupe keys during the delivery = %v, want its claim", keys)
	}

	cancel() // as SIGTERM does
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(logs.String(), `"msg":"in-flight requests cut short"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the shutdown never timed out; logs:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	returned := false
	select {
	case err := <-served:
		t.Errorf("serve returned (%v), closing the store, while a handler was still delivering", err)
		returned = true
	case <-time.After(200 * time.Millisecond):
	}
	close(stdout.release)
	if !returned {
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("serve did not return after the handler did")
		}
	}

	if keys := dedupeKeys(t, redisURL, tenant); len(keys) != 0 {
		t.Errorf("dedupe keys after the shutdown = %v, want the claim released before the store closed", keys)
	}
	if strings.Contains(logs.String(), "failing open") {
		t.Errorf("the store failed during the shutdown:\n%s", logs)
	}
}
