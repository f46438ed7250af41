#!/usr/bin/env python3
"""The peer in jobstore's benchmarks: Toil's own FileJobStore doing the same workloads as bench/workloads/*.ts.

Driven by bench/toil.ts, which runs it in a virtual environment holding toil==9.6.0. It uses Toil's real API
(toil.jobStores.fileJobStore.FileJobStore, toil.job.JobDescription, toil.common.Config), exactly as Toil's leader
and workers call it, and prints one line of JSON with the timings (seconds per phase).

Workloads (same counts, payload sizes and job graph as the Node side):
  churn  create N jobs inside batch(), load each, update each, list them with jobs(), delete each
  files  write N files of SIZE bytes with write_file_stream, read each with read_file_stream, delete each
  clean  a store of N jobs (10% unreachable from the root, 5% of the reachable ones with a used-up try), then what
         Toil's leader does on restart (toil/common.py, Toil._restart): cache every job with jobs(), then
         clean(jobCache)
  status a store of N jobs (a tree of fan-out 10 from the root, all reachable), then the real `toil status` on it
         (a process of its own, as a user runs it: it loads the root job and walks the graph, one load_job at a time)

--setup-dir (clean, status): make the store there and run the timed part on --dir, the same folder seen another way
(the FUSE stand-in's backing folder and its mount), so that the untimed set-up does not pay the delay.

Toil's API is synchronous: every phase runs one operation at a time, as Toil's leader does.
"""

import argparse
import json
import os
import pickle
import sys
import time


def log(message):
    print(f"[toil] {message}", file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workload", choices=["churn", "files", "clean", "status"])
    parser.add_argument("--dir", required=True, help="job store folder to create (must not exist)")
    parser.add_argument("--setup-dir", help="clean, status: create the store here; --dir is the same folder seen elsewhere")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--record-bytes", type=int, default=2048, help="target size of a stored job")
    parser.add_argument("--file-bytes", type=int, default=64 * 1024)
    args = parser.parse_args()

    # Imported here so that a broken install fails with the message below, not a traceback at the top.
    try:
        import toil.version
        from toil.common import Config
        from toil.job import JobDescription
        from toil.jobStores.fileJobStore import FileJobStore
    except ImportError as err:
        print(json.dumps({"error": f"cannot import toil: {err}"}))
        return 2

    import logging

    # Toil logs every repaired job at CRITICAL in clean(); keep stderr readable without changing what runs.
    logging.getLogger("toil").setLevel(logging.ERROR + 100)

    config = Config()
    store = FileJobStore(args.setup_dir or args.dir)
    store.initialize(config)
    requirements = {"memory": 2 * 1024**3, "cores": 1, "disk": 2 * 1024**3, "preemptible": True}

    def new_job(index):
        desc = JobDescription(requirements=requirements, jobName="bench", unitName=f"unit-{index}")
        # Engine-owned data, as jobstore's `extra`: padded below so that the pickled record is --record-bytes.
        desc.extra = {"index": index, "inputs": {"sample": f"S{index}"}, "pad": ""}
        return desc

    # Pad so that one stored record has the requested size (measured with Toil's own pickling of a job).
    probe = new_job(0)
    probe.jobStoreID = "kind-bench/instance-xxxxxxxx"
    base = len(pickle.dumps(probe, pickle.HIGHEST_PROTOCOL))
    pad = "p" * max(0, args.record_bytes - base)

    def make_job(index):
        desc = new_job(index)
        desc.extra["pad"] = pad
        return desc

    result = {
        "workload": args.workload,
        "count": args.count,
        "toilVersion": toil.version.version,
        "python": sys.version.split()[0],
        "phases": {},
    }
    phases = result["phases"]

    def timed(name, fn):
        start = time.perf_counter()
        value = fn()
        phases[name] = time.perf_counter() - start
        return value

    try:
        if args.workload == "churn":
            jobs = [make_job(i) for i in range(args.count)]
            for desc in jobs:
                store.assign_job_id(desc)

            def create():
                with store.batch():
                    for desc in jobs:
                        store.create_job(desc)

            timed("create", create)
            result["recordBytes"] = os.path.getsize(store._get_job_file_name(jobs[0].jobStoreID))
            ids = [desc.jobStoreID for desc in jobs]
            loaded = timed("load", lambda: [store.load_job(i) for i in ids])

            def update():
                for desc in loaded:
                    desc.extra["state"] = "updated"
                    store.update_job(desc)

            timed("update", update)
            listed = timed("list", lambda: sum(1 for _ in store.jobs()))
            if listed != args.count:
                raise RuntimeError(f"jobs() listed {listed} jobs, expected {args.count}")

            def delete():
                for i in ids:
                    store.delete_job(i)

            timed("delete", delete)
        elif args.workload == "files":
            data = os.urandom(args.file_bytes)
            file_ids = []

            def write():
                for _ in range(args.count):
                    with store.write_file_stream() as (handle, file_id):
                        handle.write(data)
                    file_ids.append(file_id)

            timed("write", write)

            def read():
                total = 0
                for file_id in file_ids:
                    with store.read_file_stream(file_id) as handle:
                        while True:
                            chunk = handle.read(256 * 1024)
                            if not chunk:
                                break
                            total += len(chunk)
                if total != args.count * args.file_bytes:
                    raise RuntimeError(f"read {total} bytes, expected {args.count * args.file_bytes}")

            timed("read", read)

            def delete():
                for file_id in file_ids:
                    store.delete_file(file_id)

            timed("delete", delete)
        elif args.workload == "status":
            import subprocess

            setup_start = time.perf_counter()
            jobs = [make_job(i) for i in range(args.count)]
            for desc in jobs:
                store.assign_job_id(desc)
            for index in range(1, args.count):
                jobs[(index - 1) // 10].addChild(jobs[index].jobStoreID)
            with store.batch():
                for desc in jobs:
                    store.create_job(desc)
            store.set_root_job(jobs[0].jobStoreID)
            phases["setup"] = time.perf_counter() - setup_start
            command = [
                sys.executable,
                "-c",
                "import sys; sys.argv[0] = 'toil status'; from toil.utils.toilStatus import main; main()",
                "--logCritical",
                f"file:{args.dir}",
            ]
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            phases["status"] = time.perf_counter() - start
            if done.returncode != 0 or f"Of the {args.count} jobs considered" not in done.stdout:
                raise RuntimeError(f"toil status exited with {done.returncode}: {done.stdout[-1000:]} {done.stderr[-2000:]}")
        else:
            setup_start = time.perf_counter()
            graph = build_graph(args.count)
            jobs = [make_job(i) for i in range(args.count)]
            for desc in jobs:
                store.assign_job_id(desc)
            for index, parent in enumerate(graph["parent"]):
                if parent is not None:
                    jobs[parent].addChild(jobs[index].jobStoreID)
            for index in graph["usedTry"]:
                jobs[index].remainingTryCount = config.retryCount  # one try used: clean() resets it
            with store.batch():
                for desc in jobs:
                    store.create_job(desc)
            store.set_root_job(jobs[0].jobStoreID)
            phases["setup"] = time.perf_counter() - setup_start

            # A restarted leader: a new instance on the same folder.
            restarted = FileJobStore(args.dir)
            restarted.resume()

            def clean():
                cache = {desc.jobStoreID: desc for desc in restarted.jobs()}
                return restarted.clean(jobCache=cache)

            timed("clean", clean)
            remaining = sum(1 for _ in restarted.jobs())
            expected = args.count - graph["unreachable"]
            if remaining != expected:
                raise RuntimeError(f"{remaining} jobs left after clean(), expected {expected}")
            result["deleted"] = graph["unreachable"]
            result["repaired"] = len(graph["usedTry"])
    finally:
        store.destroy()

    print(json.dumps(result))
    return 0


def build_graph(count):
    """The job graph of the clean workload; bench/workloads/clean.ts builds the same one.

    Jobs 0..R-1 are reachable (job i > 0 is a child of job (i - 1) // 10, so the root is job 0), jobs R..count-1
    (10%) are unreachable: no job points at them. Every 20th reachable job (i % 20 == 1) has used one try.
    """
    unreachable = count // 10
    reachable = count - unreachable
    parent = [None if i == 0 or i >= reachable else (i - 1) // 10 for i in range(count)]
    used_try = [i for i in range(reachable) if i % 20 == 1]
    return {"parent": parent, "usedTry": used_try, "unreachable": unreachable}


if __name__ == "__main__":
    sys.exit(main())
