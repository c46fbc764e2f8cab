package sandbox

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// shmExec is SHM_EXEC of shmat(2), which x/sys/unix does not name.
const shmExec = 0o100000

// loadFilter installs the unit's seccomp filters on this process (which must already have
// no_new_privs or CAP_SYS_ADMIN), the way systemd would: the allow list (only this
// architecture's native calls pass: SystemCallArchitectures=native), then what
// RestrictAddressFamilies=, MemoryDenyWriteExecute=, RestrictNamespaces= and
// RestrictSUIDSGID= deny by argument.
//
// Each argument rule is a filter of its own, one system call each, that allows everything
// else: go-seccomp-bpf leaves an argument in the accumulator after a failed argument check,
// so a rule placed before others would compare that argument with their system-call numbers.
// The kernel applies every filter and keeps the strictest answer.
func loadFilter(s *Spec) error {
	info, err := arch.GetInfo("")
	if err != nil {
		return err
	}
	known := func(names ...string) []string {
		var out []string
		for _, n := range names {
			if _, ok := info.SyscallNames[n]; ok {
				out = append(out, n)
			}
		}
		return out
	}
	errno := func(e unix.Errno) seccomp.Action { return seccomp.ActionErrno | seccomp.Action(e) }
	load := func(def seccomp.Action, groups ...seccomp.SyscallGroup) error {
		return seccomp.LoadFilter(seccomp.Filter{
			NoNewPrivs: false, // set by setpriv, as the unit asks; the kernel refuses a filter otherwise
			Flag:       seccomp.FilterFlagTSync,
			Policy:     seccomp.Policy{DefaultAction: def, Syscalls: groups},
		})
	}
	// rule denies one system call (with errno e) when every condition holds.
	rule := func(name string, e unix.Errno, conds ...seccomp.Condition) error {
		if len(known(name)) == 0 {
			return nil
		}
		return load(seccomp.ActionAllow, seccomp.SyscallGroup{Action: errno(e),
			NamesWithCondtions: []seccomp.NameWithConditions{{Name: name, Conditions: conds}}})
	}
	var rules []error
	if s.Families != nil {
		var conds []seccomp.Condition
		for _, f := range s.Families {
			conds = append(conds, seccomp.Condition{Argument: 0, Operation: seccomp.NotEqual, Value: uint64(f)})
		}
		rules = append(rules, rule("socket", unix.EAFNOSUPPORT, conds...))
	}
	bits := func(arg uint32, v uint64) seccomp.Condition {
		return seccomp.Condition{Argument: arg, Operation: seccomp.BitsSet, Value: v}
	}
	if s.MemoryDenyWX {
		rules = append(rules,
			rule("mmap", unix.EPERM, bits(2, unix.PROT_WRITE), bits(2, unix.PROT_EXEC)),
			rule("mprotect", unix.EPERM, bits(2, unix.PROT_EXEC)),
			rule("pkey_mprotect", unix.EPERM, bits(2, unix.PROT_EXEC)),
			rule("shmat", unix.EPERM, bits(2, shmExec)))
	}
	if s.RestrictNamespaces {
		const newNS = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
			unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP
		rules = append(rules, rule("clone", unix.EPERM, bits(0, newNS)))
		if s.Syscalls == nil {
			rules = append(rules, rule("unshare", unix.EPERM), rule("setns", unix.EPERM))
		}
	}
	if s.RestrictSUIDSGID {
		const sugid = unix.S_ISUID | unix.S_ISGID
		rules = append(rules, rule("chmod", unix.EPERM, bits(1, sugid)), rule("fchmod", unix.EPERM, bits(1, sugid)),
			rule("fchmodat", unix.EPERM, bits(2, sugid)), rule("fchmodat2", unix.EPERM, bits(2, sugid)))
	}
	// The allow list last: it does not allow seccomp(2) itself.
	if s.Syscalls != nil {
		def := seccomp.ActionKillProcess
		switch s.Errno {
		case 0:
		case int(unix.EPERM):
			def = seccomp.ActionErrno // the library's default action carries EPERM only
		default:
			return fmt.Errorf("SystemCallErrorNumber=%s is not emulated (only EPERM)", unix.ErrnoName(unix.Errno(s.Errno)))
		}
		if os.Getenv(EnvSeccomp) == "log" {
			def = seccomp.ActionLog
		}
		var groups []seccomp.SyscallGroup
		allow := known(s.Syscalls...)
		if s.RestrictNamespaces {
			// clone3 passes its flags in memory a filter cannot read: systemd refuses it
			// with ENOSYS, and the C library falls back to clone.
			groups = append(groups, seccomp.SyscallGroup{Names: known("clone3"), Action: errno(unix.ENOSYS)})
			allow = slices.DeleteFunc(allow, func(n string) bool { return n == "clone3" || n == "unshare" || n == "setns" })
		}
		sort.Strings(allow)
		groups = append(groups, seccomp.SyscallGroup{Names: allow, Action: seccomp.ActionAllow})
		rules = append(rules, load(def, groups...))
	}
	return errors.Join(rules...)
}
