package hypervisor

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
)

// DetectAccel decides which accelerator AccelAuto means on this host and
// says why, for logs and for tests that skip KVM-only checks.
//
// KVM is used only when /dev/kvm exists, can be opened, AND /proc/cpuinfo
// shows hardware virtualisation (vmx or svm). The second condition is not
// redundant: some cloud machines expose a /dev/kvm backed by a nested
// paravirtual hypervisor (PVM) without vmx/svm, on which ordinary guest
// kernels hang. Everything else gets TCG (multi-threaded).
func DetectAccel() (accel string, reason string) {
	return detectAccel("/dev/kvm", "/proc/cpuinfo")
}

func detectAccel(kvmPath, cpuinfoPath string) (string, string) {
	if _, err := os.Stat(kvmPath); err != nil {
		return string(AccelTCG), fmt.Sprintf("%s does not exist: no KVM on this host, using TCG", kvmPath)
	}
	info, err := os.ReadFile(cpuinfoPath)
	if err != nil {
		return string(AccelTCG), fmt.Sprintf("cannot read %s (%v): using TCG", cpuinfoPath, err)
	}
	if !cpuHasVirt(info) {
		return string(AccelTCG), fmt.Sprintf("%s exists but %s has no vmx or svm flag (nested/paravirtual KVM, where guests hang): using TCG", kvmPath, cpuinfoPath)
	}
	f, err := os.OpenFile(kvmPath, os.O_RDWR, 0)
	if err != nil {
		return string(AccelTCG), fmt.Sprintf("%s cannot be opened (%v): using TCG", kvmPath, errors.Unwrap(err))
	}
	f.Close()
	return string(AccelKVM), fmt.Sprintf("%s is usable and the CPU has hardware virtualisation: using KVM", kvmPath)
}

// cpuHasVirt looks for vmx or svm among the "flags" lines of cpuinfo.
func cpuHasVirt(cpuinfo []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		key, val, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || string(bytes.TrimSpace(key)) != "flags" {
			continue
		}
		for _, f := range bytes.Fields(val) {
			if string(f) == "vmx" || string(f) == "svm" {
				return true
			}
		}
	}
	return false
}

// ResolveAccel turns a requested accelerator into the one to use: auto
// becomes DetectAccel's choice, kvm and tcg are kept as asked (an explicit
// kvm on a host without KVM fails at start with the emulator's message).
func ResolveAccel(a Accel) (Accel, string) {
	switch a {
	case AccelKVM:
		return AccelKVM, "kvm requested"
	case AccelTCG:
		return AccelTCG, "tcg requested"
	}
	acc, reason := DetectAccel()
	return Accel(acc), reason
}
