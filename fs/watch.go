package fs

import (
	"context"
	"sort"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// watchBudget bounds the partitions checked per tick (each check is a few stat calls), so a
// kernel that knows very many partitions costs a bounded amount of CPU; they are visited
// round-robin.
const watchBudget = 2000

// watch checks, every WatchInterval, where each partition the kernel knows lives. A book's
// bytes are the same in every tier, so its cached pages and attributes stay valid across a
// move; the small files beside it (meta.json, index/...) may differ between tiers, so after a
// move their cached pages, attributes and names are dropped.
func (f *FS) watch(ctx context.Context) {
	t := time.NewTicker(f.cfg.WatchInterval)
	defer t.Stop()
	next := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		parts := f.partList()
		sort.Slice(parts, func(i, j int) bool { return parts[i].logical < parts[j].logical })
		for i := 0; i < len(parts) && i < watchBudget; i++ {
			if ctx.Err() != nil {
				return
			}
			d := parts[(next+i)%len(parts)]
			if d.checkLoc() {
				d.mu.Lock()
				loc := d.loc
				d.mu.Unlock()
				f.log.Info("partition moved", "partition", d.logical, "tier", loc.tier.String(), "found", loc.found)
				f.views.drop(d.logical, nil) // new opens of its views read the new tier
				f.invalidate(&d.Inode, !loc.found)
			}
		}
		if len(parts) > 0 {
			next = (next + watchBudget) % len(parts)
		}
		f.forget(parts)
	}
}

// forgetBudget bounds the partitions forgotten per tick: each is one notification the
// kernel handles synchronously.
const forgetBudget = 20000

// forget asks the kernel to drop the least recently used partition directories beyond
// max_known_partitions. Every name the kernel holds pins an inode here (go-fuse keeps one
// per kernel inode): a `find` over 100,000 partitions would otherwise keep some 700,000 in
// memory. The kernel drops the name and its children, forgets their inodes once nothing
// uses them, and looks the partition up again whenever someone asks; open files keep
// working. A partition still in use when forgotten is no longer watched for moves until it
// is looked up again (its book's bytes are the same in every tier).
func (f *FS) forget(parts []*dirNode) {
	over := len(parts) - f.cfg.MaxKnownPartitions
	if f.cfg.MaxKnownPartitions == 0 || over <= 0 {
		return
	}
	over = min(over, forgetBudget)
	sort.Slice(parts, func(i, j int) bool { return parts[i].used.Load() < parts[j].used.Load() })
	for _, d := range parts[:over] {
		f.dropPart(d)
		if name, parent := d.Parent(); parent != nil {
			parent.NotifyEntry(name)
		}
		f.st.forgotten.Add(1)
	}
}

// invalidate drops what the kernel caches below a partition directory. Books keep their
// pages (same bytes in every tier); gone partitions lose their name too. Names listed by the
// new tier are dropped as well, which clears cached "no such file" answers for files that
// only the new tier has.
func (f *FS) invalidate(dir *gofs.Inode, gone bool) {
	// The directory's own attributes and cached listing (kept long: partDirEntryTimeout).
	dir.NotifyContent(0, 0)
	names := map[string]bool{}
	if d, ok := dir.Operations().(*dirNode); ok && !gone {
		if ents, err := f.res.ReadDir(d.logical); err == nil {
			for _, e := range ents {
				names[e.Name] = true
			}
		}
	}
	for name, ch := range dir.Children() {
		names[name] = true
		switch n := ch.Operations().(type) {
		case *fileNode:
			if n.kind == kindPlain {
				ch.NotifyContent(0, 0)
			}
		case *dirNode:
			f.invalidate(ch, gone)
		}
	}
	for name := range names {
		dir.NotifyEntry(name)
	}
	if gone {
		if name, parent := dir.Parent(); parent != nil {
			parent.NotifyEntry(name)
		}
	}
}
