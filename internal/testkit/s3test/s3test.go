// Package s3test runs a real S3 server (Versity's versitygw, posix backend) on
// loopback for tests: a free port, a temporary data directory, random root
// keys and one bucket. Tests can stop, restart, pause and resume it to check
// behaviour when the remote tier goes away.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"
)

// Region is the region the server is started with.
const Region = "us-east-1"

// DefaultBucket is the bucket Start creates.
const DefaultBucket = "chronicle-test"

const (
	readyTimeout = 20 * time.Second
	healthPath   = "/health"
)

// ErrNoBinary means versitygw could not be found.
var ErrNoBinary = errors.New("versitygw binary not found")

// Server is one versitygw process bound to 127.0.0.1.
type Server struct {
	// Endpoint is the base URL, e.g. http://127.0.0.1:41234.
	Endpoint  string
	Addr      string // host:port
	Region    string
	AccessKey string
	SecretKey string
	Bucket    string
	// Dir is the posix root; Dir/Bucket holds the objects as plain files.
	Dir string
	// NetNS, when set (a path such as /run/netns/NAME), makes the next Restart run the
	// server inside that network namespace (with nsenter, so mounts stay shared), on the
	// same loopback address; Client and the readiness check then dial inside it too.
	NetNS string

	t      testing.TB
	bin    string
	logDir string
	iamDir string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd exits
	runs   int
	paused bool
}

// Pid is the server process's id (0 before it starts), for benchmarks that account
// its CPU time.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Binary locates versitygw: $VERSITYGW, then PATH, then $(go env GOPATH)/bin.
func Binary() (string, error) {
	if p := os.Getenv("VERSITYGW"); p != "" {
		if isExec(p) {
			return p, nil
		}
		return "", fmt.Errorf("%w: $VERSITYGW=%q is not an executable file", ErrNoBinary, p)
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var dirs []string
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		dirs = append(dirs, filepath.SplitList(strings.TrimSpace(string(out)))...)
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "bin", "versitygw")
		if isExec(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w in $VERSITYGW, PATH or $(go env GOPATH)/bin", ErrNoBinary)
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// Start launches versitygw, creates DefaultBucket, waits until it answers and
// registers a cleanup that stops it. It fails the test (never skips) when the
// binary is missing.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("s3test: %v; run `make test` (it installs versitygw) or "+
			"`go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`", err)
	}
	s := &Server{
		Region:    Region,
		AccessKey: "AK" + randHex(9),
		SecretKey: randHex(20),
		Bucket:    DefaultBucket,
		Dir:       t.TempDir(),
		logDir:    t.TempDir(),
		iamDir:    t.TempDir(),
		t:         t,
		bin:       bin,
	}
	t.Cleanup(s.kill)

	// A free port can be taken between probing and binding; try a few.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("s3test: free port: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		s.Endpoint = "http://" + s.Addr
		if lastErr = s.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("s3test: start versitygw: %v", lastErr)
	}
	if err := s.createBucket(s.Bucket); err != nil {
		t.Fatalf("s3test: create bucket: %v", err)
	}
	return s
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URI returns s3://bucket/prefix (or s3://bucket when prefix is empty).
func (s *Server) URI(prefix string) string {
	prefix = strings.Trim(prefix, "/")
	if prefix == "" {
		return "s3://" + s.Bucket
	}
	return "s3://" + s.Bucket + "/" + prefix
}

// Client returns a plain SDK client for this server (path-style, static keys,
// stock transport settings), for tests and baselines that want to talk to S3
// directly. Its idle connections are closed when the test ends.
func (s *Server) Client() *s3.Client {
	tr := s.transport()
	s.t.Cleanup(tr.CloseIdleConnections)
	return s3.New(s3.Options{
		HTTPClient:   &http.Client{Transport: tr},
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		// Leave checksums to the caller so raw baselines stay raw.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// CreateBucket creates another bucket on this server.
func (s *Server) CreateBucket(name string) {
	s.t.Helper()
	if err := s.createBucket(name); err != nil {
		s.t.Fatalf("s3test: create bucket %q: %v", name, err)
	}
}

func (s *Server) createBucket(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)})
	return err
}

func (s *Server) start() error {
	logPath := filepath.Join(s.logDir, fmt.Sprintf("versitygw-%d.log", s.runs))
	s.runs++
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	args := []string{
		"--port", s.Addr,
		"--region", s.Region,
		"--health", healthPath,
		"--keep-alive", // without it every ranged GET pays a new TCP connection
		"--quiet",
		"--iam-dir", s.iamDir, // users besides root (ReadOnlyUser)
		"posix", s.Dir}
	cmd := exec.Command(s.bin, args...)
	if s.NetNS != "" {
		// nsenter execs the server in its place: the pid stays the server's.
		cmd = exec.Command("nsenter", append([]string{"--net=" + s.NetNS, s.bin}, args...)...)
	}
	env := make([]string, 0, len(os.Environ())+2)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VGW_") || strings.HasPrefix(kv, "ROOT_") {
			continue // keep the server's configuration exactly what we pass
		}
		env = append(env, kv)
	}
	cmd.Env = append(env, "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done, s.paused = cmd, done, false
	s.mu.Unlock()

	if err := waitReady(s.Endpoint+healthPath, s.transport(), done); err != nil {
		s.kill()
		tail, _ := os.ReadFile(logPath)
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("%w; log %s:\n%s", err, logPath, tail)
	}
	return nil
}

func waitReady(url string, tr *http.Transport, done <-chan struct{}) error {
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: time.Second, Transport: tr}
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("versitygw exited during start")
		default:
		}
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("versitygw not ready after %v", readyTimeout)
}

// kill stops the process (SIGKILL: like a crash, open connections reset) and
// waits for it to exit. Safe to call when not running.
func (s *Server) kill() {
	s.mu.Lock()
	cmd, done, paused := s.cmd, s.done, s.paused
	s.cmd, s.done, s.paused = nil, nil, false
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	if paused {
		_ = cmd.Process.Signal(syscall.SIGCONT)
	}
	<-done
}

// Stop kills the server; the port and data directory are kept for Restart.
func (s *Server) Stop() {
	s.t.Helper()
	s.kill()
}

// Restart starts the server again on the same port and directory and waits
// until it is ready. Running servers are stopped first.
func (s *Server) Restart() {
	s.t.Helper()
	s.kill()
	var err error
	// The old socket may linger briefly; retry binding for a moment.
	for range 50 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("s3test: restart versitygw on %s: %v", s.Addr, err)
}

// Pause freezes the server with SIGSTOP: connections are still accepted by
// the kernel but never answered, the way a hung server looks to a client.
func (s *Server) Pause() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP, true)
}

// Resume undoes Pause.
func (s *Server) Resume() {
	s.t.Helper()
	s.signal(syscall.SIGCONT, false)
}

func (s *Server) signal(sig syscall.Signal, paused bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("s3test: signal %v: server not running", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("s3test: signal %v: %v", sig, err)
	}
	s.paused = paused
	if paused {
		// SIGSTOP reaches a busy process's threads a little later; a test that sends a
		// request right after Pause must find every thread stopped.
		deadline := time.Now().Add(5 * time.Second)
		for !allStopped(s.cmd.Process.Pid) {
			if time.Now().After(deadline) {
				s.t.Fatalf("s3test: server pid %d not stopped 5 s after SIGSTOP", s.cmd.Process.Pid)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// allStopped reports whether every thread of pid is in the stopped state.
func allStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, task.Name()))
		if err != nil {
			return false
		}
		// The state follows the command name, which is in parentheses and may hold spaces.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}

// ObjectPath is where the posix backend keeps key's bytes in bucket.
func (s *Server) ObjectPath(bucket, key string) string {
	return filepath.Join(s.Dir, bucket, filepath.FromSlash(key))
}

// transport is a stock transport that dials inside NetNS when it is set.
func (s *Server) transport() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.NetNS != "" {
		tr.Proxy = nil
		tr.DialContext = NetNSDialer(s.NetNS)
	}
	return tr
}

// NetNSDialer dials from inside the network namespace at path (e.g. /run/netns/NAME): the
// socket is made on a thread that joined it, and keeps to it wherever it is used.
func NetNSDialer(path string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			// The thread joins the namespace, dials, and goes back. It must not be thrown
			// away (by exiting locked) unless going back fails: a child process started
			// from this thread with Pdeathsig set (as tests start daemons) would be killed
			// with it.
			runtime.LockOSThread()
			home, err := os.Open("/proc/thread-self/ns/net")
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, err}
				return
			}
			defer home.Close()
			f, err := os.Open(path)
			if err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				runtime.UnlockOSThread()
				ch <- result{nil, fmt.Errorf("setns %s: %w", path, err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			} // else: stay locked, and the thread ends with this goroutine
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// MoveTo restarts the server inside the network namespace ns (a path such as
// /run/netns/NAME), listening on host, an address of that namespace, at the same port:
// hosts in other namespaces then reach it over whatever link joins them.
func (s *Server) MoveTo(ns, host string) {
	s.t.Helper()
	s.kill()
	_, port, _ := net.SplitHostPort(s.Addr)
	s.NetNS = ns
	s.Addr = net.JoinHostPort(host, port)
	s.Endpoint = "http://" + s.Addr
	s.Restart()
}

// ReadOnlyUser creates a user whose only rights are to list the bucket and get the objects
// under prefix ("" for all), granted by a bucket policy, and returns its keys: what a
// research host's credentials should allow (docs/research-hosts.md).
func (s *Server) ReadOnlyUser(prefix string) (access, secret string) {
	s.t.Helper()
	access, secret = "ro"+randHex(6), randHex(20)
	args := []string{"admin", "--access", s.AccessKey, "--secret", s.SecretKey, "--endpoint-url", s.Endpoint,
		"create-user", "--access", access, "--secret", secret, "--role", "user"}
	cmd := exec.Command(s.bin, args...)
	if s.NetNS != "" {
		cmd = exec.Command("nsenter", append([]string{"--net=" + s.NetNS, s.bin}, args...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("s3test: create user: %v\n%s", err, out)
	}
	policy := ReadOnlyPolicy(s.Bucket, prefix, access)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Client().PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(s.Bucket), Policy: aws.String(policy)}); err != nil {
		s.t.Fatalf("s3test: bucket policy: %v\n%s", err, policy)
	}
	return access, secret
}

// ReadOnlyPolicy is a bucket policy letting principal list bucket and get the objects
// under prefix, and nothing else.
func ReadOnlyPolicy(bucket, prefix, principal string) string {
	objects := "arn:aws:s3:::" + bucket + "/*"
	if p := strings.Trim(prefix, "/"); p != "" {
		objects = "arn:aws:s3:::" + bucket + "/" + p + "/*"
	}
	return fmt.Sprintf(`{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Principal": %q, "Action": ["s3:ListBucket"], "Resource": "arn:aws:s3:::%s"},
    {"Effect": "Allow", "Principal": %q, "Action": ["s3:GetObject"], "Resource": %q}
  ]
}`, principal, bucket, principal, objects)
}
