// Package daemon holds what every Chronicle command shares: structured logging, the
// Prometheus /metrics endpoint, signal handling, readiness notification and progress bars.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chronicle/chronicle/internal/config"
	"github.com/coreos/go-systemd/v22/activation"
	sdnotify "github.com/coreos/go-systemd/v22/daemon"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/sys/unix"
)

// Logger builds the process logger from the [log] section, writing to stderr.
func Logger(c config.Log, component string) (*slog.Logger, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Level)); err != nil {
		return nil, fmt.Errorf("[log] level %q: %w", c.Level, err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler
	switch strings.ToLower(c.Format) {
	case "json", "":
		h = slog.NewJSONHandler(os.Stderr, opts)
	case "text":
		h = slog.NewTextHandler(os.Stderr, opts)
	default:
		return nil, fmt.Errorf("[log] format %q: want json or text", c.Format)
	}
	return slog.New(h).With("component", component), nil
}

// Registry returns a registry with the Go runtime and process collectors.
func Registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// ServeMetrics serves /metrics (and /healthz) on addr until ctx ends. An empty addr
// disables it. It returns once the listener is bound, so a bad address fails at start.
// A listening socket passed by systemd (socket activation: the one named "metrics", or the
// only one) wins over addr: the service then needs no network of its own
// (deploy/chronicle-etl.socket).
func ServeMetrics(ctx context.Context, addr string, reg *prometheus.Registry, log *slog.Logger) (net.Addr, error) {
	ln := activatedListener()
	if ln == nil {
		if addr == "" {
			return nil, nil
		}
		var err error
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
		}
	} else if addr != "" {
		log.Info("metrics: serving the socket passed by the service manager instead of metrics_addr", "metrics_addr", addr)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	log.Info("metrics listening", "addr", ln.Addr().String())
	return ln.Addr(), nil
}

// activatedListener is the metrics socket systemd passed ($LISTEN_FDS), or nil.
func activatedListener() net.Listener {
	ls, err := activation.ListenersWithNames()
	if err != nil {
		return nil
	}
	if l := ls["metrics"]; len(l) > 0 {
		return l[0]
	}
	if len(ls) == 1 {
		for _, l := range ls {
			if len(l) == 1 {
				return l[0]
			}
		}
	}
	return nil
}

// CPUProfileEnv names a file a daemon writes a CPU profile of its run to, from
// SignalContext until its stop function (a clean exit): benchmarks ask for it to show
// where each daemon's time goes at its ceiling (scale.venue).
const CPUProfileEnv = "CHRONICLE_CPUPROFILE"

// SignalContext is cancelled on SIGINT or SIGTERM; a second signal kills the process.
// With $CHRONICLE_CPUPROFILE set, the CPU profile runs until the returned stop function.
func SignalContext(log *slog.Logger) (context.Context, context.CancelFunc) {
	stopProfile := func() {}
	if path := os.Getenv(CPUProfileEnv); path != "" {
		if f, err := os.Create(path); err != nil {
			log.Warn("cpu profile", "err", err)
		} else if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			log.Warn("cpu profile", "err", err)
		} else {
			var once sync.Once
			stopProfile = func() { once.Do(func() { pprof.StopCPUProfile(); f.Close() }) }
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-ch
		log.Info("shutting down", "signal", s.String())
		notify(log, sdnotify.SdNotifyStopping)
		cancel()
		s = <-ch
		log.Warn("second signal: exiting now", "signal", s.String())
		os.Exit(1)
	}()
	return ctx, func() { signal.Stop(ch); cancel(); stopProfile() }
}

// Ready tells the service manager (systemd Type=notify, or a test harness listening on
// $NOTIFY_SOCKET) that the daemon is up: configuration read, signals handled, metrics
// listening. From then on SIGTERM means a clean shutdown. Without NOTIFY_SOCKET it does
// nothing.
func Ready(log *slog.Logger) { notify(log, sdnotify.SdNotifyReady) }

func notify(log *slog.Logger, state string) {
	if _, err := sdnotify.SdNotify(false, state); err != nil {
		log.Warn("notify the service manager", "state", state, "err", err)
	}
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Progress returns a byte-count progress bar on stderr when it is a terminal, else nil.
// Callers use the nil-safe helpers below.
func Progress(total int64, desc string) *progressbar.ProgressBar {
	if !IsTerminal(os.Stderr) {
		return nil
	}
	return progressbar.DefaultBytes(total, desc)
}

// Bar is a byte-count progress bar on stderr, or nothing when stderr is no terminal: Add
// and Done are safe either way. A total that turns out short grows.
type Bar struct{ pb *progressbar.ProgressBar }

// NewBar starts a bar of total bytes labelled desc (nothing off a terminal or for no bytes).
func NewBar(total int64, desc string) *Bar {
	if total <= 0 {
		return &Bar{}
	}
	return &Bar{Progress(total, desc)}
}

// Add counts n more bytes done.
func (b *Bar) Add(n int64) {
	if b.pb == nil {
		return
	}
	if cur := b.pb.State().CurrentNum + n; cur > b.pb.GetMax64() {
		b.pb.ChangeMax64(cur)
	}
	b.pb.Add64(n)
}

// Done finishes the bar and ends its line.
func (b *Bar) Done() {
	if b.pb != nil {
		b.pb.Finish()
		fmt.Fprintln(os.Stderr)
		b.pb = nil
	}
}
