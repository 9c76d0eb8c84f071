package instances

import "sort"

// InstanceType describes one EC2 instance type as DescribeInstanceTypes
// reports it, with the real vCPU count and memory of AWS's type.
//
// Decision on accelerated and storage-optimised types: labcloud launches
// GPU types (p3, g4dn) and types with instance-store disks (g4dn, i3 NVMe,
// d2 HDD) with the same vCPUs and memory as any other type, but without the
// GPU and without the instance-store disks: the lab server has neither to
// give. DescribeInstanceTypes still reports the GPU and the disks AWS would
// give (GpuInfo, InstanceStorageInfo), and LabcloudNote says what a labcloud
// instance of the type really gets, so a course can teach the catalogue
// while students see the difference.
type InstanceType struct {
	Name string
	// VCPUs and MemoryMiB are AWS's figures for the type. The VM gets
	// VCPUs as they are, and MemoryMiB capped to Options.MaxGuestMemoryMiB.
	VCPUs     int
	MemoryMiB int
	// DefaultCores × DefaultThreadsPerCore = VCPUs, as AWS reports them
	// (two hyper-threads per core on every type here).
	DefaultCores          int
	DefaultThreadsPerCore int
	Architecture          string // x86_64
	ProcessorManufacturer string
	ProcessorDescription  string
	ClockSpeedGHz         float64
	Hypervisor            string // nitro or xen
	CurrentGeneration     bool
	Burstable             bool
	NetworkPerformance    string
	MaxENIs               int
	IPv4PerENI            int
	// GPUs, if any (not given to labcloud VMs, see the type's doc).
	GPUs []GPU
	// InstanceStorage, if any (not given to labcloud VMs either).
	InstanceStorage *InstanceStorage
	// LabcloudNote says how a labcloud VM of this type differs from AWS's.
	LabcloudNote string
}

// GPU is one kind of accelerator of an instance type.
type GPU struct {
	Name, Manufacturer string
	Count, MemoryMiB   int
}

// InstanceStorage is an instance type's local (instance-store) disks.
type InstanceStorage struct {
	TotalSizeGB int
	Disks       []LocalDisk
	NVMe        string // required, supported or unsupported
}

// LocalDisk is one group of identical instance-store disks.
type LocalDisk struct {
	SizeGB, Count int
	Type          string // ssd or hdd
}

// DefaultInstanceType is what RunInstances launches without InstanceType.
// AWS's own default is m1.small, a previous-generation type labcloud does
// not offer; t3.micro is the free-tier type courses use.
const DefaultInstanceType = "t3.micro"

const noAccelNote = "labcloud gives this type's vCPUs and memory but no GPU and no instance-store disks"

func intelT3(name string, vcpu, mem, enis, ips int) InstanceType {
	return InstanceType{Name: name, VCPUs: vcpu, MemoryMiB: mem, DefaultCores: vcpu / 2, DefaultThreadsPerCore: 2,
		Architecture: "x86_64", ProcessorManufacturer: "Intel", ProcessorDescription: "Intel Xeon Platinum 8000 series",
		ClockSpeedGHz: 3.1, Hypervisor: "nitro", CurrentGeneration: true, Burstable: true,
		NetworkPerformance: "Up to 5 Gigabit", MaxENIs: enis, IPv4PerENI: ips}
}

func nitro(name, cpu string, ghz float64, vcpu, mem, enis, ips int) InstanceType {
	return InstanceType{Name: name, VCPUs: vcpu, MemoryMiB: mem, DefaultCores: vcpu / 2, DefaultThreadsPerCore: 2,
		Architecture: "x86_64", ProcessorManufacturer: "Intel", ProcessorDescription: cpu, ClockSpeedGHz: ghz,
		Hypervisor: "nitro", CurrentGeneration: true, NetworkPerformance: "Up to 10 Gigabit", MaxENIs: enis, IPv4PerENI: ips}
}

// instanceTypes is the catalogue: real families and sizes with AWS's real
// vCPU and memory figures.
var instanceTypes = func() map[string]InstanceType {
	m := map[string]InstanceType{}
	add := func(t InstanceType) { m[t.Name] = t }
	for _, s := range []struct {
		size      string
		vcpu, mem int
		enis, ips int
	}{
		{"nano", 2, 512, 2, 2}, {"micro", 2, 1024, 2, 2}, {"small", 2, 2048, 3, 4}, {"medium", 2, 4096, 3, 6},
		{"large", 2, 8192, 3, 12}, {"xlarge", 4, 16384, 4, 15}, {"2xlarge", 8, 32768, 4, 15},
	} {
		add(intelT3("t3."+s.size, s.vcpu, s.mem, s.enis, s.ips))
		a := intelT3("t3a."+s.size, s.vcpu, s.mem, s.enis, s.ips)
		a.ProcessorManufacturer, a.ProcessorDescription, a.ClockSpeedGHz = "AMD", "AMD EPYC 7000 series", 2.5
		add(a)
	}
	for _, s := range []struct {
		size            string
		vcpu, enis, ips int
	}{{"large", 2, 3, 10}, {"xlarge", 4, 4, 15}, {"2xlarge", 8, 4, 15}} {
		add(nitro("m5."+s.size, "Intel Xeon Platinum 8175", 3.1, s.vcpu, s.vcpu*4096, s.enis, s.ips))
		add(nitro("c5."+s.size, "Intel Xeon Platinum 8124M", 3.4, s.vcpu, s.vcpu*2048, s.enis, s.ips))
		add(nitro("r5."+s.size, "Intel Xeon Platinum 8175", 3.1, s.vcpu, s.vcpu*8192, s.enis, s.ips))
	}
	x1e := nitro("x1e.xlarge", "High Frequency Intel Xeon E7-8880 v3 (Haswell)", 2.3, 4, 124928, 3, 10)
	x1e.Hypervisor = "xen"
	x1e.InstanceStorage = &InstanceStorage{TotalSizeGB: 120, Disks: []LocalDisk{{SizeGB: 120, Count: 1, Type: "ssd"}}, NVMe: "unsupported"}
	x1e.LabcloudNote = noAccelNote
	add(x1e)
	p3 := nitro("p3.2xlarge", "Intel Xeon E5-2686 v4 (Broadwell)", 2.3, 8, 62464, 4, 15)
	p3.Hypervisor = "xen"
	p3.GPUs = []GPU{{Name: "V100", Manufacturer: "NVIDIA", Count: 1, MemoryMiB: 16384}}
	p3.LabcloudNote = noAccelNote
	add(p3)
	g4 := nitro("g4dn.xlarge", "Intel Xeon Platinum 8259CL", 2.5, 4, 16384, 3, 10)
	g4.NetworkPerformance = "Up to 25 Gigabit"
	g4.GPUs = []GPU{{Name: "T4", Manufacturer: "NVIDIA", Count: 1, MemoryMiB: 16384}}
	g4.InstanceStorage = &InstanceStorage{TotalSizeGB: 125, Disks: []LocalDisk{{SizeGB: 125, Count: 1, Type: "ssd"}}, NVMe: "required"}
	g4.LabcloudNote = noAccelNote
	add(g4)
	i3 := nitro("i3.large", "Intel Xeon E5-2686 v4 (Broadwell)", 2.3, 2, 15616, 3, 10)
	i3.Hypervisor = "xen"
	i3.InstanceStorage = &InstanceStorage{TotalSizeGB: 475, Disks: []LocalDisk{{SizeGB: 475, Count: 1, Type: "ssd"}}, NVMe: "required"}
	i3.LabcloudNote = noAccelNote
	add(i3)
	d2 := nitro("d2.xlarge", "Intel Xeon E5-2676 v3 (Haswell)", 2.4, 4, 31232, 4, 15)
	d2.Hypervisor, d2.NetworkPerformance = "xen", "Moderate"
	d2.InstanceStorage = &InstanceStorage{TotalSizeGB: 6000, Disks: []LocalDisk{{SizeGB: 2000, Count: 3, Type: "hdd"}}, NVMe: "unsupported"}
	d2.LabcloudNote = noAccelNote
	add(d2)
	return m
}()

// InstanceTypes returns the catalogue sorted by name.
func InstanceTypes() []InstanceType {
	out := make([]InstanceType, 0, len(instanceTypes))
	for _, t := range instanceTypes {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LookupInstanceType finds a type by name.
func LookupInstanceType(name string) (InstanceType, bool) {
	t, ok := instanceTypes[name]
	return t, ok
}
