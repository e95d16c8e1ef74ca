#!/usr/bin/env python3
"""test_launchers.py — the cluster launchers (slurm/, k8s/) and scripts/make_calib.py.

Run by ctest (tests/launchers.cmake, label python) with QS_PYTHON; needs PyYAML. Environment: QSHARD
(the binary), QS_SRC (the checkout), QS_DATA_DIR (shared data, optional), QS_MPIEXEC (optional).
  slurm/*.sbatch  bash -n; shellcheck when installed; the #SBATCH directives that sbatch would read
                  (before the first command): nodes, 8 tasks and 8 GPUs per node, cpus, exclusive,
                  requeue, a signal that the script traps and passes to the ranks, then requeues
                  (`scontrol requeue`) when qshard stopped with status 200; the
                  scripts' bodies identical; dry runs (QS_DRY_RUN=1): srun --mpi=pmix, always
                  --resume, variables land in the command, bad STAGES / missing inputs refused, a
                  finished OUT left alone.
  k8s/*.yaml      every document parses and has apiVersion, kind, metadata.name; the MPIJob's
                  replica specs, restart and run policies, GPU limits = slotsPerWorker, /dev/shm in
                  memory, HF_TOKEN from the Secret of secret-example.yaml, claims that pvc.yaml
                  defines, the model mounted read-only, the launcher's mpirun ... qshard quantize
                  ... --resume (bash -n, shellcheck, forwarded variables exported); the calibration
                  Job runs scripts/make_calib.py with options it has and writes the MPIJob's CALIB.
  flags           every option given to `qshard quantize` in slurm/ and k8s/ is listed by
                  `$QSHARD quantize --help` (fails, naming them, while qshard lacks one).
  make_calib.py   with sentencepiece, numpy, h5py and the shared data: windows of gutenberg28M's
                  tokenizer on WikiText-2 are exact slices of the shipped reference token stream,
                  BOS first, seeded, and `qshard eval` reads the file; bad input fails cleanly.
  end to end      when qshard lists every flag: the 1-node script's command runs for real on a
                  synthetic model (--device cpu, 2 ranks), then the script sees OUT finished.
"""
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ.get("QS_SRC") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QSHARD = os.environ.get("QSHARD", "")
DATA = os.environ.get("QS_DATA_DIR", "")
SLURM = {"qshard-1node.sbatch": 1, "qshard-multinode.sbatch": 2}  # script -> #SBATCH --nodes
DRY_QSHARD_ARGS = "--samples 256 --seqlen 4096"  # QSHARD_ARGS of the full dry run (real qshard options)
FLAG_RE = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")

failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")
    return cond


def note(msg):
    print(f"note: {msg}")


def run(cmd, env=None, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, env=env, **kw)


def shellcheck(path, what):
    if shutil.which("shellcheck") is None:
        note(f"shellcheck not installed: {what} not linted")
        return
    r = run(["shellcheck", "-s", "bash", path])
    check(r.returncode == 0, f"shellcheck {what}:\n{r.stdout}{r.stderr}")


def bash_syntax(path, what):
    r = run(["bash", "-n", path])
    check(r.returncode == 0, f"bash -n {what}: {r.stderr.strip()}")


def flags_in(text):
    return set(FLAG_RE.findall(text))


# ---- qshard's own option list ----------------------------------------------------------------------
def qshard_quantize_flags():
    if not QSHARD or not os.access(QSHARD, os.X_OK):
        check(False, f"QSHARD={QSHARD!r} is not an executable (did the qshard target build?)")
        return set()
    r = run([QSHARD, "quantize", "--help"])
    out = r.stdout + r.stderr
    check("usage" in out.lower(), f"`qshard quantize --help` prints no usage (rc {r.returncode})")
    return flags_in(out)


# ---- slurm -----------------------------------------------------------------------------------------
def sbatch_directives(text):
    """Options of the #SBATCH lines that sbatch reads: those before the first command line."""
    opts = {}
    for line in text.splitlines()[1:]:
        s = line.strip()
        if s.startswith("#SBATCH"):
            for tok in shlex.split(s[len("#SBATCH"):], comments=True):
                key, _, val = tok.partition("=")
                opts[key] = val
        elif s and not s.startswith("#"):
            break
    return opts


def header_and_body(text):
    i = text.index("\nset -euo pipefail\n")
    return text[:i], text[i:]


def check_sbatch_header(name, text, nodes):
    o = sbatch_directives(text)
    check(o.get("--nodes") == str(nodes), f"{name}: #SBATCH --nodes={nodes} (got {o.get('--nodes')})")
    check(o.get("--ntasks-per-node") == "8", f"{name}: #SBATCH --ntasks-per-node=8")
    check(o.get("--gpus-per-node") == "8" or o.get("--gpus-per-task") == "1",
          f"{name}: #SBATCH --gpus-per-node=8 or --gpus-per-task=1")
    check(o.get("--cpus-per-task", "").isdigit(), f"{name}: #SBATCH --cpus-per-task=N")
    for key in ("--exclusive", "--requeue"):
        check(key in o, f"{name}: #SBATCH {key}")
    check(o.get("--open-mode") == "append", f"{name}: #SBATCH --open-mode=append (requeued runs keep the log)")
    m = re.fullmatch(r"(?:B:)?(?:SIG)?(\w+)@(\d+)", o.get("--signal", ""))
    if check(m is not None, f"{name}: #SBATCH --signal=[B:]SIG@SECONDS"):
        sig = m.group(1)
        trap = re.search(r"^trap (\w+) " + sig + r"$", text, re.M)
        if check(trap is not None, f"{name}: the script traps {sig}"):
            fn = re.search(r"^" + trap.group(1) + r"\(\) \{\n(.*?)\n\}", text, re.M | re.S)
            check(fn is not None and f'kill -{sig} "$step"' in fn.group(1),
                  f"{name}: the {sig} handler passes the signal to the ranks (qshard saves and stops)")
            check(re.search(r'^if \[ "\$rc" = 200 \] && \[ "\$stopping" = 1 \]; then requeue; fi$', text, re.M)
                  is not None and 'scontrol requeue "$SLURM_JOB_ID"' in text,
                  f"{name}: status 200 after the {sig} stop requeues the job (scontrol requeue)")
    check(re.search(r"^\s*launch=\(srun --mpi=pmix ", text, re.M) is not None, f"{name}: launches with srun --mpi=pmix")
    check(re.search(r"^# launch=\(mpirun ", text, re.M) is not None, f"{name}: documents an mpirun alternative")


def dry_env(tmp, **extra):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "QS_DRY_RUN": "1", "SLURM_JOB_ID": "4242",
           "SLURM_NTASKS": "16", "SLURM_CPUS_PER_TASK": "12", "MODEL": f"{tmp}/model",
           "CALIB": f"{tmp}/calib.h5", "OUT": f"{tmp}/out", "METRICS_DIR": f"{tmp}/textfile"}
    env.update(extra)
    return env


def dry_run(path, env):
    r = run(["bash", path], env=env)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("srun ")]
    return r, (shlex.split(lines[0]) if lines else [])


def opt_value(argv, flag):
    return argv[argv.index(flag) + 1] if flag in argv and argv.index(flag) + 1 < len(argv) else None


def check_dry_runs(name, path, tmp):
    """Returns the qshard flags of the full dry-run command."""
    os.makedirs(f"{tmp}/model", exist_ok=True)
    os.makedirs(f"{tmp}/textfile", exist_ok=True)
    with open(f"{tmp}/model/config.json", "w") as f:
        f.write("{}")
    open(f"{tmp}/calib.h5", "w").close()
    env = dry_env(tmp, STAGES="2", TP="8", LOG_JSON="1", QSHARD="/opt/qshard/bin/qshard",
                  QSHARD_ARGS=DRY_QSHARD_ARGS)
    r, argv = dry_run(path, env)
    if not check(r.returncode == 0 and argv, f"{name}: dry run (rc {r.returncode}): {r.stderr.strip()}"):
        return set()
    q = argv.index("/opt/qshard/bin/qshard") if "/opt/qshard/bin/qshard" in argv else -1
    if not check(q > 0 and argv[q + 1:q + 2] == ["quantize"], f"{name}: dry run runs $QSHARD quantize: {argv}"):
        return set()
    launch, args = argv[:q], argv[q + 2:]
    check("--mpi=pmix" in launch and "--cpus-per-task=12" in launch and "--kill-on-bad-exit=1" in launch,
          f"{name}: srun --mpi=pmix --kill-on-bad-exit=1 --cpus-per-task=$SLURM_CPUS_PER_TASK: {launch}")
    want = {"--model": f"{tmp}/model", "--calib": f"{tmp}/calib.h5", "--out": f"{tmp}/out",
            "--stages": "2", "--tp": "8", "--metrics-file": f"{tmp}/textfile/qshard_4242.prom",
            "--device": "cuda", "--method": "gptq", "--bits": "4", "--group-size": "128"}
    for flag, val in want.items():
        check(opt_value(args, flag) == val, f"{name}: {flag} {val} in the command (got {opt_value(args, flag)})")
    for flag in ("--resume", "--act-order", "--log-json"):
        check(flag in args, f"{name}: {flag} in the command")
    check(args[-4:] == ["--samples", "256", "--seqlen", "4096"], f"{name}: QSHARD_ARGS appended: {args[-4:]}")
    # Without TP / LOG_JSON / ACT_ORDER and with an unwritable METRICS_DIR: still --resume, metrics beside OUT.
    r, argv = dry_run(path, dry_env(tmp, ACT_ORDER="0", METRICS_DIR=f"{tmp}/absent"))
    check(r.returncode == 0 and "--resume" in argv and "--tp" not in argv and "--act-order" not in argv
          and "--log-json" not in argv and opt_value(argv, "--metrics-file") == f"{tmp}/out.metrics.prom",
          f"{name}: minimal dry run: {argv} {r.stderr.strip()}")
    # Refusals: one message, exit 2, no command.
    for extra, text in (({"STAGES": "3"}, "does not divide the 16 ranks"),
                        ({"STAGES": "x"}, "positive integer"),
                        ({"MODEL": f"{tmp}/nomodel"}, "has no config.json"),
                        ({"CALIB": f"{tmp}/no.h5"}, "is not a file")):
        r, argv = dry_run(path, dry_env(tmp, **extra))
        check(r.returncode == 2 and not argv and text in r.stderr, f"{name}: {extra} refused with '{text}' "
              f"(rc {r.returncode}, {r.stderr.strip()})")
    env = dry_env(tmp)
    del env["OUT"]
    r, argv = dry_run(path, env)
    check(r.returncode != 0 and not argv and "OUT" in r.stderr, f"{name}: OUT unset refused: {r.stderr.strip()}")
    # A finished OUT (renamed into place, no OUT.partial) is left alone; with OUT.partial the run goes on.
    os.makedirs(f"{tmp}/out", exist_ok=True)
    open(f"{tmp}/out/config.json", "w").close()
    r, argv = dry_run(path, dry_env(tmp))
    check(r.returncode == 0 and not argv and "nothing to do" in r.stdout,
          f"{name}: finished OUT left alone: {r.stdout}")
    os.makedirs(f"{tmp}/out.partial", exist_ok=True)
    r, argv = dry_run(path, dry_env(tmp))
    check(r.returncode == 0 and "--resume" in argv, f"{name}: OUT with OUT.partial resumes")
    shutil.rmtree(f"{tmp}/out")
    shutil.rmtree(f"{tmp}/out.partial")
    return flags_in(" ".join(args))


def check_slurm(tmp):
    """Returns {flag: [where]} of the qshard quantize options used."""
    used = {}
    texts = {}
    for name, nodes in SLURM.items():
        path = os.path.join(SRC, "slurm", name)
        if not check(os.path.isfile(path), f"slurm/{name} exists"):
            continue
        text = texts[name] = open(path).read()
        bash_syntax(path, f"slurm/{name}")
        shellcheck(path, f"slurm/{name}")
        check_sbatch_header(name, text, nodes)
        # Static: every option in the cmd=( ... ) / cmd+=( ... ) arrays, also those a dry run leaves out.
        static = set()
        for m in re.finditer(r"\bcmd\+?=\((.*?)\)", text, re.S):
            static |= flags_in(m.group(1))
        dyn = check_dry_runs(name, path, os.path.join(tmp, name))
        extra = dyn - static - flags_in(DRY_QSHARD_ARGS)
        check(not extra, f"slurm/{name}: dry-run flags {sorted(extra)} not found statically")
        for flag in static | dyn:
            used.setdefault(flag, []).append(f"slurm/{name}")
    if len(texts) == 2:
        bodies = [header_and_body(t)[1] for t in texts.values()]
        check(bodies[0] == bodies[1], "slurm: the two scripts differ below their #SBATCH headers")
    check(os.path.isfile(os.path.join(SRC, "slurm", "README.md")), "slurm/README.md exists")
    return used


# ---- k8s -------------------------------------------------------------------------------------------
def load_k8s():
    import yaml
    docs = {}
    for name in sorted(os.listdir(os.path.join(SRC, "k8s"))):
        if not name.endswith((".yaml", ".yml")):
            continue
        try:
            with open(os.path.join(SRC, "k8s", name)) as f:
                items = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            check(False, f"k8s/{name} does not parse: {e}")
            continue
        check(len(items) > 0, f"k8s/{name} holds a document")
        for d in items:
            ok = isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and \
                isinstance(d.get("metadata"), dict) and d["metadata"].get("name")
            check(ok, f"k8s/{name}: a document without apiVersion, kind or metadata.name")
        docs[name] = items
    return docs


def one(docs, file, kind):
    found = [d for d in docs.get(file, []) if isinstance(d, dict) and d.get("kind") == kind]
    check(len(found) == 1, f"k8s/{file}: one {kind} (found {len(found)})")
    return found[0] if found else None


def check_pod(where, spec, claims, secret):
    """Generic pod checks; returns {claimName: readOnly-everywhere} for this pod."""
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    used = {}
    check(spec.get("containers"), f"{where}: containers")
    for c in spec.get("containers", []):
        check(bool(c.get("image")), f"{where}: container {c.get('name')} has an image")
        for m in c.get("volumeMounts", []):
            v = vols.get(m["name"])
            if not check(v is not None, f"{where}: volumeMount {m['name']} has no volume"):
                continue
            pvc = v.get("persistentVolumeClaim")
            if pvc:
                check(pvc["claimName"] in claims, f"{where}: claim {pvc['claimName']} is not in pvc.yaml")
                ro = bool(m.get("readOnly")) or bool(pvc.get("readOnly"))
                used[pvc["claimName"]] = used.get(pvc["claimName"], True) and ro
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                check(secret is not None and ref.get("name") == secret["metadata"]["name"]
                      and ref.get("key") in secret.get("stringData", {}),
                      f"{where}: secretKeyRef {ref} does not match k8s/secret-example.yaml")
    return used


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def script_of(container):
    cmd = (container.get("command") or []) + (container.get("args") or [])
    if cmd[:2] == ["/bin/bash", "-c"] and len(cmd) >= 3:
        return cmd[2]
    return None


def command_from(script, start):
    """The shell command starting at `start` (a word sequence) up to its first line without a backslash."""
    i = script.find(start)
    if i < 0:
        return ""
    out = []
    for line in script[i:].splitlines():
        out.append(line)
        if not line.rstrip().endswith("\\"):
            break
    return "\n".join(out)


def lint_script(script, what, tmp):
    path = os.path.join(tmp, what.replace("/", "_") + ".sh")
    with open(path, "w") as f:
        f.write("#!/bin/bash\n" + script)
    bash_syntax(path, what)
    shellcheck(path, what)


def check_mpijob(job, claims, secret, calib_out, tmp):
    used = {}
    spec = job["spec"]
    check(job["apiVersion"] == "kubeflow.org/v2beta1", "MPIJob apiVersion kubeflow.org/v2beta1")
    specs = spec.get("mpiReplicaSpecs", {})
    if not check(set(specs) == {"Launcher", "Worker"}, f"MPIJob replica specs Launcher and Worker: {sorted(specs)}"):
        return used
    rp = spec.get("runPolicy", {})
    check(isinstance(rp.get("backoffLimit"), int) and rp["backoffLimit"] >= 1, "MPIJob runPolicy.backoffLimit >= 1")
    check(rp.get("cleanPodPolicy") in ("Running", "All"), "MPIJob runPolicy.cleanPodPolicy Running or All")
    for role in ("Launcher", "Worker"):
        check(specs[role].get("restartPolicy") == "OnFailure", f"MPIJob {role} restartPolicy OnFailure")
        check("restartPolicy" not in specs[role]["template"]["spec"],
              f"MPIJob {role}: restartPolicy in the pod template (the operator overrides it)")
    check(specs["Launcher"].get("replicas") == 1, "MPIJob one launcher")
    wspec = specs["Worker"]["template"]["spec"]
    lspec = specs["Launcher"]["template"]["spec"]
    wc, lc = wspec["containers"][0], lspec["containers"][0]
    gpus = wc.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
    slots = spec.get("slotsPerWorker")
    check(isinstance(gpus, int) and gpus > 0, "MPIJob workers limit nvidia.com/gpu")
    check(slots == gpus, f"MPIJob slotsPerWorker {slots} = the workers' nvidia.com/gpu {gpus} (one rank per GPU)")
    shm = [m for m in wc.get("volumeMounts", []) if m.get("mountPath") == "/dev/shm"]
    vols = {v["name"]: v for v in wspec.get("volumes", [])}
    check(len(shm) == 1 and vols.get(shm[0]["name"], {}).get("emptyDir", {}).get("medium") == "Memory",
          "MPIJob workers: /dev/shm from an emptyDir with medium Memory")
    wclaims = check_pod("MPIJob Worker", wspec, claims, secret)
    check_pod("MPIJob Launcher", lspec, claims, secret)
    check("qshard-models" in wclaims and wclaims["qshard-models"], "MPIJob workers mount qshard-models read-only")
    check(wclaims.get("qshard-output") is False, "MPIJob workers mount qshard-output writable")
    check(any(e.get("name") == "HF_TOKEN" and e.get("valueFrom", {}).get("secretKeyRef") for e in lc.get("env", [])),
          "MPIJob launcher: HF_TOKEN from a secretKeyRef")
    env = env_of(lc)
    workers = specs["Worker"].get("replicas", 0)
    check(env.get("STAGES", "").isdigit() and (workers * slots) % int(env["STAGES"]) == 0,
          f"MPIJob STAGES={env.get('STAGES')} divides the {workers} x {slots} ranks")
    check(env.get("CALIB") == calib_out, f"MPIJob CALIB {env.get('CALIB')} = the calibration Job's --out {calib_out}")
    script = script_of(lc)
    if not check(script is not None, "MPIJob launcher runs a bash -c script"):
        return used
    lint_script(script, "k8s/qshard-mpijob launcher", tmp)
    mpirun = command_from(script, "mpirun ")
    check("--hostfile /etc/mpi/hostfile" in mpirun and '-np "$NP"' in mpirun,
          "MPIJob: mpirun --hostfile /etc/mpi/hostfile -np")
    quant = command_from(script, "qshard quantize ")
    check(quant and "--resume" in quant, "MPIJob launcher: mpirun ... qshard quantize ... --resume")
    # Graceful stop (qshard saves its state on SIGUSR1/SIGTERM and exits 200): bash as PID 1 ignores
    # SIGTERM unless trapped, mpirun ends the job on SIGTERM but forwards SIGUSR1, and a worker's sshd
    # as PID 1 would take the ranks down with it.
    check(re.search(r"^\s*trap '.*kill -USR1 \"\$mpi\".*' TERM$", script, re.M) is not None and mpirun.rstrip().endswith("&"),
          "MPIJob launcher: mpirun in the background, SIGTERM passed on as SIGUSR1")
    wscript = script_of(wc)
    if check(wscript is not None, "MPIJob worker runs a bash -c script around sshd"):
        lint_script(wscript, "k8s/qshard-mpijob worker", tmp)
        check("/usr/sbin/sshd -De &" in wscript and "pkill -USR1 -x qshard" in wscript
              and re.search(r"^trap stop TERM$", wscript, re.M) is not None,
              "MPIJob worker: sshd in the background, SIGTERM passed to the ranks as SIGUSR1")
    for role, s in (("Launcher", lspec), ("Worker", wspec)):
        g = s.get("terminationGracePeriodSeconds")
        check(isinstance(g, int) and g >= 300, f"MPIJob {role}: terminationGracePeriodSeconds >= 300 (got {g})")
    for var in re.findall(r"-x (\w+)", mpirun):
        if var not in ("PATH", "LD_LIBRARY_PATH"):
            check(re.search(r"^export .*\b" + var + "=", script, re.M) is not None,
                  f"MPIJob launcher forwards {var} (-x) but does not export it")
    for flag in flags_in(quant) | flags_in(env.get("QSHARD_ARGS") or ""):
        used.setdefault(flag, []).append("k8s/qshard-mpijob.yaml")
    return used


def check_calib_job(job, claims, secret, calib_flags):
    """Returns the --out path of the calibration Job."""
    check(job["apiVersion"] == "batch/v1", "calib Job apiVersion batch/v1")
    pod = job["spec"]["template"]["spec"]
    check(pod.get("restartPolicy") in ("Never", "OnFailure"), "calib Job restartPolicy Never or OnFailure")
    check_pod("calib Job", pod, claims, secret)
    c = pod["containers"][0]
    script = script_of(c) or ""
    cmd = command_from(script, "python3 ")
    m = re.search(r"python3 (\S+)/make_calib\.py", cmd)
    if not check(m is not None, "calib Job runs make_calib.py"):
        return None
    # The script comes from a ConfigMap made from scripts/make_calib.py and mounted at that folder.
    mount = [x for x in c.get("volumeMounts", []) if x["mountPath"] == m.group(1)]
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    check(len(mount) == 1 and "configMap" in vols.get(mount[0]["name"], {}), "calib Job mounts the script's ConfigMap")
    check(os.path.isfile(os.path.join(SRC, "scripts", "make_calib.py")), "scripts/make_calib.py exists")
    bad = flags_in(cmd) - calib_flags
    check(not bad, f"calib Job passes options make_calib.py lacks: {sorted(bad)}")
    out = re.search(r"--out (\S+)", cmd)
    return out.group(1) if out else None


def check_k8s(tmp, calib_flags):
    used = {}
    docs = load_k8s()
    for f in ("pvc.yaml", "qshard-mpijob.yaml", "calib-job.yaml", "secret-example.yaml", "README.md"):
        check(os.path.isfile(os.path.join(SRC, "k8s", f)), f"k8s/{f} exists")
    claims = {(d.get("metadata") or {}).get("name") for d in docs.get("pvc.yaml", [])
              if isinstance(d, dict) and d.get("kind") == "PersistentVolumeClaim"}
    check({"qshard-models", "qshard-output"} <= claims, f"pvc.yaml defines qshard-models and qshard-output: {claims}")
    secret = one(docs, "secret-example.yaml", "Secret")
    if secret:
        check(set(secret.get("stringData", {})) == {"token"} and "REPLACE" in secret["stringData"]["token"],
              "secret-example.yaml: stringData.token holds a placeholder")
    job = one(docs, "calib-job.yaml", "Job")
    calib_out = check_calib_job(job, claims, secret, calib_flags) if job else None
    mpi = one(docs, "qshard-mpijob.yaml", "MPIJob")
    if mpi:
        used = check_mpijob(mpi, claims, secret, calib_out, tmp)
    return used


# ---- make_calib.py ---------------------------------------------------------------------------------
def make_calib_flags():
    r = run([sys.executable, os.path.join(SRC, "scripts", "make_calib.py"), "--help"])
    check(r.returncode == 0 and "--tokenizer" in r.stdout, f"make_calib.py --help: {r.stderr.strip()}")
    return flags_in(r.stdout)


def check_make_calib(tmp):
    # make_calib.py reads a directory that has only tokenizer.model (gutenberg28M) with sentencepiece.
    absent = [m for m in ("sentencepiece", "numpy", "h5py") if importlib.util.find_spec(m) is None]
    if absent:
        note(f"make_calib.py not run: {sys.executable} lacks {', '.join(absent)}")
        return
    import h5py
    import numpy as np
    g, text = os.path.join(DATA, "gutenberg28M"), os.path.join(DATA, "text", "wiki.test.raw")
    if not (DATA and os.path.isfile(os.path.join(g, "tokenizer.model")) and os.path.isfile(text)):
        note(f"make_calib.py not run: shared data not found (QS_DATA_DIR={DATA!r})")
        return
    mc = [sys.executable, os.path.join(SRC, "scripts", "make_calib.py"), "--tokenizer", g, "--text", text,
          "--samples", "8", "--seqlen", "256"]
    outs, ok = {}, True
    for tag, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        outs[tag] = os.path.join(tmp, f"calib_{tag}.h5")
        r = run(mc + ["--seed", seed, "--out", outs[tag]])
        ok = check(r.returncode == 0, f"make_calib.py seed {seed}: {r.stderr.strip()}") and ok
    if not ok:
        return
    ids = h5py.File(outs["a"], "r")["input_ids"][()]
    check(ids.dtype == np.int32 and ids.shape == (8, 256),
          f"make_calib: /input_ids int32 [8, 256], got {ids.dtype} {ids.shape}")
    check((ids[:, 0] == 1).all(), "make_calib: every window starts with BOS (1)")
    # The shipped stream is SentencePiece's encoding of the same text (BOS once, then the text): each
    # window after its BOS must be an exact slice of it, at a whole-token offset.
    ref = h5py.File(os.path.join(g, "wikitext2_test.h5"), "r")["input_ids"][1:].astype("<i4").tobytes()
    for k, row in enumerate(ids):
        at = ref.find(row[1:].astype("<i4").tobytes())
        check(at >= 0 and at % 4 == 0, f"make_calib: window {k} is not a slice of gutenberg28M/wikitext2_test.h5")
    same = open(outs["a"], "rb").read() == open(outs["b"], "rb").read()
    check(same, "make_calib: same seed, different bytes")
    check(not (h5py.File(outs["c"], "r")["input_ids"][()] == ids).all(), "make_calib: seed 1 gives the same windows")
    print(f"make_calib.py: {len(ids)} windows of 256 tokens, all slices of the reference stream")
    # qshard reads it (2-D [n, seqlen]: one window per row). Bound: the model's WikiText-2 PPL is 145.6
    # at 1024 tokens of context and about 175 at 256; uniform guessing over 8192 ids is 8192 and ids
    # from a different tokenization land in the thousands, so 400 separates right from wrong.
    if QSHARD and os.access(QSHARD, os.X_OK):
        r = run([QSHARD, "eval", "--model", g, "--data", outs["a"], "--seqlen", "256"])
        m = re.search(r"^ppl (\S+)", r.stdout, re.M)
        check(r.returncode == 0 and m and float(m.group(1)) < 400,
              f"qshard eval on make_calib output: {r.stdout[-300:]}{r.stderr[-300:]}")
        if m:
            print(f"qshard eval on the make_calib.py file: ppl {m.group(1)}")
    # Bad input: one message, non-zero exit, nothing left behind.
    bad = os.path.join(tmp, "bad.h5")
    r = run(mc[:-2] + ["--seqlen", "10000000", "--out", bad])
    left = [f for f in os.listdir(tmp) if f.startswith("bad.h5")]
    check(r.returncode != 0 and "a window needs" in r.stderr and not left,
          f"make_calib: text too short: {r.stderr.strip()} {left}")
    r = run(mc[:4] + ["--text", os.path.join(tmp, "absent.txt"), "--out", bad])
    check(r.returncode != 0 and "absent.txt" in r.stderr and "Traceback" not in r.stderr,
          f"make_calib: missing text: {r.stderr.strip()}")


# ---- end to end ------------------------------------------------------------------------------------
def end_to_end(tmp):
    """The 1-node script's real command (srun swapped for mpirun -np 2) on a synthetic model."""
    mpiexec = shlex.split(os.environ.get("QS_MPIEXEC", ""))
    if not mpiexec:
        note("end-to-end run skipped: QS_MPIEXEC not set")
        return
    model, out = os.path.join(tmp, "tiny"), os.path.join(tmp, "tiny-q")
    r = run([QSHARD, "synth", "--config", "tiny", "--seed", "3", "--tokens", "40000", "--out", model])
    if not check(r.returncode == 0, f"qshard synth: {r.stderr.strip()}"):
        return
    script = os.path.join(SRC, "slurm", "qshard-1node.sbatch")
    os.makedirs(os.path.join(tmp, "textfile"), exist_ok=True)
    env = dry_env(tmp, MODEL=model, CALIB=os.path.join(model, "tokens.h5"), OUT=out, SLURM_NTASKS="2",
                  SLURM_CPUS_PER_TASK="1", DEVICE="cpu", QSHARD=QSHARD, LOG_JSON="1",
                  QSHARD_ARGS="--samples 8 --seqlen 128")
    r, argv = dry_run(script, env)
    q = argv.index(QSHARD) if QSHARD in argv else -1
    if not check(r.returncode == 0 and q > 0, f"end to end: dry run: {r.stderr.strip()}"):
        return
    r = run(mpiexec + ["-np", "2"] + argv[q:], env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    check(r.returncode == 0 and os.path.isfile(os.path.join(out, "config.json")),
          f"end to end: {' '.join(argv[q:])} (rc {r.returncode}):\n{r.stdout[-1500:]}{r.stderr[-1500:]}")
    check(os.path.isfile(os.path.join(tmp, "textfile", "qshard_4242.prom")), "end to end: metrics file written")
    r, argv = dry_run(script, env)
    check(r.returncode == 0 and not argv and "nothing to do" in r.stdout,
          "end to end: the script leaves the finished OUT alone")


def main():
    if importlib.util.find_spec("yaml") is None:
        print(f"FAIL: {sys.executable} lacks PyYAML (scripts/test.sh installs it: pip install pyyaml)")
        return 1
    with tempfile.TemporaryDirectory(prefix="qs_launchers.") as tmp:
        help_flags = qshard_quantize_flags()
        used = check_slurm(tmp)
        for flag, where in check_k8s(tmp, make_calib_flags()).items():
            used.setdefault(flag, []).extend(where)
        print(f"qshard quantize options used by the launchers: {' '.join(sorted(used))}")
        missing = sorted(f for f in used if f not in help_flags)
        check(not missing, "options given to `qshard quantize` that `qshard quantize --help` does not list: "
              + ", ".join(f"{f} ({', '.join(sorted(set(used[f])))})" for f in missing))
        check_make_calib(tmp)
        if help_flags and not missing:
            end_to_end(tmp)
        else:
            note("end-to-end run skipped: qshard lacks options the launchers use")
    print(f"test_launchers: {checks} checks, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
