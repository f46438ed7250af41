// delayfs: a FUSE loopback file system that makes every request wait a fixed time before it is served, a stand-in
// for a shared file system (NFS, Lustre, GPFS) where each metadata or data call is a round trip to a server.
// Only for benchmarks (bench/run.ts mounts it; see docs/benchmarks.md, "The shared-file-system stand-in").
//
//	delayfs [-delay 2ms] [-entry-timeout 1s] [-attr-timeout 1s] [-negative-timeout 0] BACKING MOUNTPOINT
//	delayfs -unmount MOUNTPOINT      lazy unmount of a mount left behind by a killed delayfs
//
// It mounts with mount(2) itself (go-fuse's DirectMountStrict: root, or CAP_SYS_ADMIN, and /dev/fuse; no
// fusermount), prints one line "mounted ..." on stdout once the mount answers, and unmounts on SIGINT, SIGTERM,
// SIGHUP or when its stdin reaches end of file (so that a parent that dies, even of SIGKILL, takes the mount with
// it). At exit it prints the number of requests of each kind on stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

func main() {
	os.Exit(run())
}

func run() int {
	delay := flag.Duration("delay", 2*time.Millisecond, "time every request waits before it is served")
	entryTimeout := flag.Duration("entry-timeout", time.Second, "how long the kernel may cache a name lookup (0: every path walk asks)")
	attrTimeout := flag.Duration("attr-timeout", time.Second, "how long the kernel may cache attributes (0: every stat asks)")
	negativeTimeout := flag.Duration("negative-timeout", 0, "how long the kernel may cache a failed lookup")
	unmountOnly := flag.String("unmount", "", "only unmount this mount point (lazily) and exit")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: delayfs [flags] BACKING MOUNTPOINT\n       delayfs -unmount MOUNTPOINT\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *unmountOnly != "" {
		if err := syscall.Unmount(*unmountOnly, syscall.MNT_DETACH); err != nil {
			fmt.Fprintf(os.Stderr, "delayfs: unmounting %s: %v\n", *unmountOnly, err)
			return 1
		}
		return 0
	}
	if flag.NArg() != 2 {
		flag.Usage()
		return 2
	}
	backing, err := filepath.Abs(flag.Arg(0))
	if err != nil {
		fmt.Fprintf(os.Stderr, "delayfs: %v\n", err)
		return 2
	}
	mountPoint, err := filepath.Abs(flag.Arg(1))
	if err != nil {
		fmt.Fprintf(os.Stderr, "delayfs: %v\n", err)
		return 2
	}
	if problem := cannotMount(); problem != "" {
		fmt.Fprintf(os.Stderr, "delayfs: FUSE cannot mount here: %s\n", problem)
		return 3
	}

	root, err := fs.NewLoopbackRoot(backing)
	if err != nil {
		fmt.Fprintf(os.Stderr, "delayfs: backing folder %s: %v\n", backing, err)
		return 2
	}
	loopback := root.(*fs.LoopbackNode)
	wrapped := &node{loopback}
	loopback.RootData.RootNode = wrapped

	options := &fs.Options{
		EntryTimeout:    entryTimeout,
		AttrTimeout:     attrTimeout,
		NegativeTimeout: negativeTimeout,
		MountOptions: fuse.MountOptions{
			// mount(2) directly, no fusermount; fail rather than fall back to it.
			DirectMountStrict: true,
			FsName:            "delayfs:" + backing,
			Name:              "delayfs",
			// No xattrs, as on NFSv3: otherwise the kernel asks for security.capability before every write.
			DisableXAttrs: true,
			// Several processes (a cell and Toil, a CLI) share the mount; as root they all may use it anyway.
			AllowOther: true,
		},
	}
	raw := &delayed{RawFileSystem: fs.NewNodeFS(wrapped, options), delay: *delay}
	server, err := fuse.NewServer(raw, mountPoint, &options.MountOptions)
	if err != nil {
		fmt.Fprintf(os.Stderr, "delayfs: FUSE cannot mount %s: %v\n", mountPoint, err)
		return 3
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		fmt.Fprintf(os.Stderr, "delayfs: the mount at %s does not answer: %v\n", mountPoint, err)
		return 3
	}
	fmt.Printf("mounted %s at %s, %s per request\n", backing, mountPoint, *delay)

	stop := make(chan string, 4)
	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() { stop <- (<-signals).String() }()
	go func() {
		// The parent holds our stdin open; end of file means it is gone (or asked us to stop by closing it).
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop <- "end of stdin"
	}()
	served := make(chan struct{})
	go func() {
		server.Wait() // returns when the mount goes away, say an `umount` from outside
		close(served)
	}()

	code := 0
	select {
	case why := <-stop:
		fmt.Fprintf(os.Stderr, "delayfs: %s: unmounting %s\n", why, mountPoint)
		// The requests still in flight are served without their delay, so that the unmount does not wait.
		raw.stopping.Store(true)
		if err := server.Unmount(); err != nil {
			// Files still open on the mount (a process we do not own): detach it; it goes when they close.
			fmt.Fprintf(os.Stderr, "delayfs: %v; detaching the mount instead\n", err)
			if err := syscall.Unmount(mountPoint, syscall.MNT_DETACH); err != nil {
				fmt.Fprintf(os.Stderr, "delayfs: detaching %s: %v\n", mountPoint, err)
				code = 1
			}
		}
	case <-served:
		fmt.Fprintf(os.Stderr, "delayfs: %s was unmounted from outside\n", mountPoint)
	}
	fmt.Fprintf(os.Stderr, "delayfs: requests served: %s\n", raw.summary())
	return code
}

// cannotMount says why a FUSE mount cannot work here, or "" when it may.
func cannotMount() string {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "/dev/fuse does not exist (no FUSE in this kernel or container; in Docker: --device /dev/fuse --cap-add SYS_ADMIN)"
		}
		return fmt.Sprintf("cannot open /dev/fuse: %v (needs root, or read-write access to /dev/fuse and CAP_SYS_ADMIN)", err)
	}
	f.Close()
	if os.Geteuid() != 0 {
		return "not root: delayfs mounts with mount(2) itself (go-fuse DirectMountStrict), which needs root or CAP_SYS_ADMIN"
	}
	return ""
}

// node is the loopback node of go-fuse, except that it never hands the kernel a passthrough file: with FUSE
// passthrough (Linux >= 6.9, as root) reads and writes would go straight to the backing file, undelayed.
type node struct{ *fs.LoopbackNode }

var _ = (fs.NodeWrapChilder)((*node)(nil))
var _ = (fs.NodeOpener)((*node)(nil))
var _ = (fs.NodeCreater)((*node)(nil))

func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{ops.(*fs.LoopbackNode)}
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, fuseFlags, errno := n.LoopbackNode.Open(ctx, flags)
	return noPassthrough(fh), fuseFlags, errno
}

func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	inode, fh, fuseFlags, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	return inode, noPassthrough(fh), fuseFlags, errno
}

type file struct{ *fs.LoopbackFile }

func (f *file) PassthroughFd() (int, bool) { return -1, false }

func noPassthrough(fh fs.FileHandle) fs.FileHandle {
	if lf, ok := fh.(*fs.LoopbackFile); ok {
		return &file{lf}
	}
	return fh
}

// delayed makes every request the kernel waits for sleep `delay` first, then counts it. FORGET and RELEASE are
// not delayed: the kernel sends them without waiting for an answer, as an NFS client closes a file it only read.
type delayed struct {
	fuse.RawFileSystem
	delay    time.Duration
	stopping atomic.Bool
	counts   sync.Map // op name -> *atomic.Int64
}

func (d *delayed) wait(op string) {
	c, ok := d.counts.Load(op)
	if !ok {
		c, _ = d.counts.LoadOrStore(op, new(atomic.Int64))
	}
	c.(*atomic.Int64).Add(1)
	if d.delay > 0 && !d.stopping.Load() {
		time.Sleep(d.delay)
	}
}

func (d *delayed) summary() string {
	var parts []string
	total := int64(0)
	d.counts.Range(func(k, v any) bool {
		n := v.(*atomic.Int64).Load()
		total += n
		parts = append(parts, fmt.Sprintf("%s %d", k, n))
		return true
	})
	sort.Strings(parts)
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

type c = <-chan struct{}

func (d *delayed) Lookup(x c, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	d.wait("lookup")
	return d.RawFileSystem.Lookup(x, h, name, out)
}
func (d *delayed) GetAttr(x c, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	d.wait("getattr")
	return d.RawFileSystem.GetAttr(x, in, out)
}
func (d *delayed) SetAttr(x c, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	d.wait("setattr")
	return d.RawFileSystem.SetAttr(x, in, out)
}
func (d *delayed) Mknod(x c, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	d.wait("mknod")
	return d.RawFileSystem.Mknod(x, in, name, out)
}
func (d *delayed) Mkdir(x c, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	d.wait("mkdir")
	return d.RawFileSystem.Mkdir(x, in, name, out)
}
func (d *delayed) Unlink(x c, h *fuse.InHeader, name string) fuse.Status {
	d.wait("unlink")
	return d.RawFileSystem.Unlink(x, h, name)
}
func (d *delayed) Rmdir(x c, h *fuse.InHeader, name string) fuse.Status {
	d.wait("rmdir")
	return d.RawFileSystem.Rmdir(x, h, name)
}
func (d *delayed) Rename(x c, in *fuse.RenameIn, oldName string, newName string) fuse.Status {
	d.wait("rename")
	return d.RawFileSystem.Rename(x, in, oldName, newName)
}
func (d *delayed) Link(x c, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	d.wait("link")
	return d.RawFileSystem.Link(x, in, name, out)
}
func (d *delayed) Symlink(x c, h *fuse.InHeader, target string, name string, out *fuse.EntryOut) fuse.Status {
	d.wait("symlink")
	return d.RawFileSystem.Symlink(x, h, target, name, out)
}
func (d *delayed) Readlink(x c, h *fuse.InHeader) ([]byte, fuse.Status) {
	d.wait("readlink")
	return d.RawFileSystem.Readlink(x, h)
}
func (d *delayed) Access(x c, in *fuse.AccessIn) fuse.Status {
	d.wait("access")
	return d.RawFileSystem.Access(x, in)
}
func (d *delayed) Create(x c, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	d.wait("create")
	return d.RawFileSystem.Create(x, in, name, out)
}
func (d *delayed) Tmpfile(x c, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	d.wait("tmpfile")
	return d.RawFileSystem.Tmpfile(x, in, out)
}
func (d *delayed) Open(x c, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	d.wait("open")
	return d.RawFileSystem.Open(x, in, out)
}
func (d *delayed) Read(x c, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	d.wait("read")
	return d.RawFileSystem.Read(x, in, buf)
}
func (d *delayed) Lseek(x c, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	d.wait("lseek")
	return d.RawFileSystem.Lseek(x, in, out)
}
func (d *delayed) GetLk(x c, in *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	d.wait("getlk")
	return d.RawFileSystem.GetLk(x, in, out)
}
func (d *delayed) SetLk(x c, in *fuse.LkIn) fuse.Status {
	d.wait("setlk")
	return d.RawFileSystem.SetLk(x, in)
}
func (d *delayed) SetLkw(x c, in *fuse.LkIn) fuse.Status {
	d.wait("setlkw")
	return d.RawFileSystem.SetLkw(x, in)
}
func (d *delayed) Write(x c, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	d.wait("write")
	return d.RawFileSystem.Write(x, in, data)
}
func (d *delayed) Writev(x c, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	d.wait("write")
	return d.RawFileSystem.Writev(x, in, data)
}
func (d *delayed) CopyFileRange(x c, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	d.wait("copy_file_range")
	return d.RawFileSystem.CopyFileRange(x, in)
}
func (d *delayed) Flush(x c, in *fuse.FlushIn) fuse.Status {
	d.wait("flush")
	return d.RawFileSystem.Flush(x, in)
}
func (d *delayed) Fsync(x c, in *fuse.FsyncIn) fuse.Status {
	d.wait("fsync")
	return d.RawFileSystem.Fsync(x, in)
}
func (d *delayed) Fallocate(x c, in *fuse.FallocateIn) fuse.Status {
	d.wait("fallocate")
	return d.RawFileSystem.Fallocate(x, in)
}
func (d *delayed) OpenDir(x c, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	d.wait("opendir")
	return d.RawFileSystem.OpenDir(x, in, out)
}
func (d *delayed) ReadDir(x c, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	d.wait("readdir")
	return d.RawFileSystem.ReadDir(x, in, out)
}
func (d *delayed) ReadDirPlus(x c, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	d.wait("readdirplus")
	return d.RawFileSystem.ReadDirPlus(x, in, out)
}
func (d *delayed) FsyncDir(x c, in *fuse.FsyncIn) fuse.Status {
	d.wait("fsyncdir")
	return d.RawFileSystem.FsyncDir(x, in)
}
func (d *delayed) StatFs(x c, h *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	d.wait("statfs")
	return d.RawFileSystem.StatFs(x, h, out)
}
func (d *delayed) Statx(x c, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	d.wait("statx")
	return d.RawFileSystem.Statx(x, in, out)
}
