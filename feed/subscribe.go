package feed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/chronicle/chronicle/venue"
)

// Venues subscribed by request (venue.Subscriber: OKX, Kraken): the feed sends each
// connection's subscribe requests once it is up, keeps it alive with the venue's own
// keep-alive, resubscribes a stream for a new websocket snapshot when its checksum or its
// sequence fails (within the venue's request budget, else it reconnects), and journals the
// venue's reference data (venue.Referencer) before it connects and whenever it changes.

// sendTimeout bounds one websocket write of a request.
const sendTimeout = 10 * time.Second

// send writes one text message.
func (c *wsConn) send(msg []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, msg)
}

// spend takes n requests from the connection's hourly budget (perHour 0: no budget).
func (c *wsConn) spend(n, perHour int, now time.Time) bool {
	c.subMu.Lock()
	defer c.subMu.Unlock()
	if h := now.Unix() / 3600; h != c.subHour {
		c.subHour, c.subReqs = h, 0
	}
	if perHour > 0 && c.subReqs+n > perHour {
		return false
	}
	c.subReqs += n
	return true
}

// subscribe sends the subscribe requests of every stream of c's slot.
func (f *Feed) subscribe(c *wsConn) error {
	reqs, err := f.sub.Subscribe(c.slot.plan.Streams)
	if err != nil {
		return err
	}
	if !c.spend(len(reqs), f.v.Limits().SubscribeRequestsPerHour, time.Now()) {
		return fmt.Errorf("%d subscribe requests exceed the venue's hourly budget", len(reqs))
	}
	for _, q := range reqs {
		if err := c.send(q); err != nil {
			return fmt.Errorf("send subscribe request: %w", err)
		}
	}
	return nil
}

// resubscribe ends and renews one stream's subscription on c, for a new snapshot. When
// the connection's request budget is spent it drops the connection instead: the
// reconnect subscribes afresh and every book starts from a new snapshot.
func (f *Feed) resubscribe(c *wsConn, st venue.Stream, reason string) {
	if c.replay || c.ws == nil {
		return
	}
	f.m.resubscribes.WithLabelValues(reason).Inc()
	go func() {
		unsub, err1 := f.sub.Unsubscribe([]venue.Stream{st})
		sub, err2 := f.sub.Subscribe([]venue.Stream{st})
		if err1 != nil || err2 != nil {
			f.log.Error("resubscribe", "stream", st.Name, "err", fmt.Sprint(err1, err2))
			return
		}
		if !c.spend(len(unsub)+len(sub), f.v.Limits().SubscribeRequestsPerHour, time.Now()) {
			f.log.Warn("subscription request budget spent: reconnecting for new snapshots", "slot", c.slot.idx, "stream", st.Name)
			c.closeNow("subscription request budget spent")
			return
		}
		for _, q := range append(unsub, sub...) {
			if err := c.send(q); err != nil {
				f.log.Warn("resubscribe failed", "stream", st.Name, "err", err)
				return // the reader sees the broken connection and it reconnects
			}
		}
		f.log.Info("resubscribed", "slot", c.slot.idx, "gen", c.gen, "stream", st.Name, "reason", reason)
	}()
}

// keepAliveLoop sends the venue's keep-alive when the connection has carried nothing for
// its idle time (or the configured ping interval, if shorter) and drops the connection
// when nothing at all arrives within the pong timeout after it.
func (c *wsConn) keepAliveLoop(stop <-chan struct{}, ka venue.KeepAlive, every, timeout time.Duration, now func() int64) {
	idle := ka.Idle
	if idle <= 0 || (every > 0 && every < idle) {
		idle = every
	}
	tick := min(time.Second, idle/2)
	t := time.NewTicker(tick)
	defer t.Stop()
	var pingAt int64
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		n, last := now(), c.lastRecv.Load()
		switch {
		case pingAt != 0 && last > pingAt:
			pingAt = 0 // an answer, or anything else: the connection lives
		case pingAt != 0 && n-pingAt > int64(timeout):
			c.closeNow(fmt.Sprintf("nothing received within %v of a keep-alive", timeout))
			return
		case pingAt == 0 && n-max(last, c.opened.UnixNano()) >= int64(idle):
			if err := c.send(ka.Message); err != nil {
				c.closeNow("keep-alive: " + err.Error())
				return
			}
			pingAt = n
		}
	}
}

// fetchReference fetches the venue's reference data and journals each body that changed
// since it was last journaled. first retries a few times (the feed connects once it has
// the instruments' scales, or gives up and lets the refinery use the venue's defaults).
func (f *Feed) fetchReference(ctx context.Context, first bool) {
	rv, ok := f.v.(venue.Referencer)
	if !ok {
		return
	}
	client := &http.Client{Timeout: f.cfg.RESTTimeout}
	for _, u := range rv.ReferenceRequests(f.cfg.RESTURL) {
		var body []byte
		var err error
		for attempt := 0; ; attempt++ {
			body, err = httpGet(ctx, client, u)
			if err == nil || !first || attempt == 3 || ctx.Err() != nil {
				break
			}
			if !sleepCtx(ctx, time.Duration(1<<attempt)*time.Second) {
				return
			}
		}
		if err != nil {
			f.m.references.WithLabelValues("error").Inc()
			f.log.Warn("reference data unavailable", "url", u, "err", err)
			continue
		}
		sum := sha256.Sum256(body)
		if f.refSums[u] == sum {
			f.m.references.WithLabelValues("unchanged").Inc()
			continue
		}
		n, err := f.rec.reference(f.rec.clock.Now(), body)
		if err != nil {
			f.m.references.WithLabelValues("error").Inc()
			f.log.Warn("reference data journaled but unreadable", "url", u, "err", err)
			continue
		}
		f.refSums[u] = sum
		f.m.references.WithLabelValues("journaled").Inc()
		f.log.Info("reference data journaled", "url", u, "instruments", n, "bytes", len(body))
	}
}

// referenceLoop fetches the reference data again every ReferenceEvery.
func (f *Feed) referenceLoop(ctx context.Context) {
	t := time.NewTicker(f.cfg.ReferenceEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.fetchReference(ctx, false)
		}
	}
}

// maxReferenceBody bounds a reference body (OKX's spot listing is about 1 MB).
const maxReferenceBody = 32 << 20

func httpGet(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxReferenceBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxReferenceBody {
		return nil, fmt.Errorf("body above %d bytes", maxReferenceBody)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("http %d: %s", resp.StatusCode, truncate(bytes.TrimSpace(body), 200))
	}
	return body, nil
}
