package sandbox

import (
	"os"
	"sort"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// shmExec is SHM_EXEC of shmat(2), which x/sys/unix does not name.
const shmExec = 0o100000

// loadFilter installs the unit's seccomp filter on this process (which must already have
// no_new_privs or CAP_SYS_ADMIN), the way systemd would: the allow list, then what
// RestrictAddressFamilies=, MemoryDenyWriteExecute=, RestrictNamespaces= and
// RestrictSUIDSGID= deny by argument. Only this architecture's native calls pass
// (SystemCallArchitectures=native; x32 gets ENOSYS).
func loadFilter(s *Spec) error {
	if s.Syscalls == nil && s.Families == nil && !s.MemoryDenyWX && !s.RestrictNamespaces && !s.RestrictSUIDSGID {
		return nil
	}
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
	cond := func(name string, arg uint32, op seccomp.Operation, v uint64) seccomp.NameWithConditions {
		return seccomp.NameWithConditions{Name: name, Conditions: seccomp.ArgumentConditions{{Argument: arg, Operation: op, Value: v}}}
	}
	var groups []seccomp.SyscallGroup
	// First match wins: argument checks come before the plain allow list.
	if s.Families != nil {
		var ok []seccomp.NameWithConditions
		for _, f := range s.Families {
			ok = append(ok, cond("socket", 0, seccomp.Equal, uint64(f)))
		}
		groups = append(groups,
			seccomp.SyscallGroup{NamesWithCondtions: ok, Action: seccomp.ActionAllow},
			seccomp.SyscallGroup{Names: []string{"socket"}, Action: errno(unix.EAFNOSUPPORT)})
	}
	if s.MemoryDenyWX {
		wx := seccomp.NameWithConditions{Name: "mmap", Conditions: seccomp.ArgumentConditions{
			{Argument: 2, Operation: seccomp.BitsSet, Value: unix.PROT_WRITE},
			{Argument: 2, Operation: seccomp.BitsSet, Value: unix.PROT_EXEC}}}
		groups = append(groups, seccomp.SyscallGroup{Action: errno(unix.EPERM), NamesWithCondtions: []seccomp.NameWithConditions{
			wx, cond("mprotect", 2, seccomp.BitsSet, unix.PROT_EXEC), cond("pkey_mprotect", 2, seccomp.BitsSet, unix.PROT_EXEC),
			cond("shmat", 2, seccomp.BitsSet, shmExec)}})
	}
	if s.RestrictNamespaces {
		const newNS = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER |
			unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP | unix.CLONE_NEWTIME
		groups = append(groups,
			seccomp.SyscallGroup{Names: known("unshare", "setns"), Action: errno(unix.EPERM)},
			seccomp.SyscallGroup{NamesWithCondtions: []seccomp.NameWithConditions{cond("clone", 0, seccomp.BitsSet, newNS)}, Action: errno(unix.EPERM)},
			// clone3 passes its flags in memory a filter cannot read: systemd refuses it
			// with ENOSYS, and the C library falls back to clone.
			seccomp.SyscallGroup{Names: known("clone3"), Action: errno(unix.ENOSYS)})
	}
	if s.RestrictSUIDSGID {
		const sugid = unix.S_ISUID | unix.S_ISGID
		groups = append(groups, seccomp.SyscallGroup{Action: errno(unix.EPERM), NamesWithCondtions: []seccomp.NameWithConditions{
			cond("chmod", 1, seccomp.BitsSet, sugid), cond("fchmod", 1, seccomp.BitsSet, sugid),
			cond("fchmodat", 2, seccomp.BitsSet, sugid), cond("fchmodat2", 2, seccomp.BitsSet, sugid)}})
	}
	def := seccomp.ActionAllow
	if s.Syscalls != nil {
		names := known(s.Syscalls...)
		sort.Strings(names)
		groups = append(groups, seccomp.SyscallGroup{Names: names, Action: seccomp.ActionAllow})
		def = seccomp.ActionKillProcess
		if s.Errno != 0 {
			def = errno(unix.Errno(s.Errno))
		}
		if os.Getenv(EnvSeccomp) == "log" {
			def = seccomp.ActionLog
		}
	}
	return seccomp.LoadFilter(seccomp.Filter{
		NoNewPrivs: false, // set by setpriv, as the unit asks; the kernel refuses a filter otherwise
		Flag:       seccomp.FilterFlagTSync,
		Policy:     seccomp.Policy{DefaultAction: def, Syscalls: groups},
	})
}
