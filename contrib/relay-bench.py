#!/usr/bin/env python3
"""Relay fan-out on loopback: one `soquete client` pipes N short lines into
`soquete server --relay`; R `soquete client` readers print what they receive.
Prints how long until every reader had every line, and whether the server closed
any reader for not reading.

    cargo build --release -p soquete-host
    python3 contrib/relay-bench.py [N=100000] [R=4]

Everything runs on 127.0.0.1; SOQUETE= names another binary.
"""
import subprocess, threading, time, sys
import os
B=os.environ.get("SOQUETE", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "soquete"))
N=int(sys.argv[1]) if len(sys.argv)>1 else 100000
R=int(sys.argv[2]) if len(sys.argv)>2 else 4
srv=subprocess.Popen([B,"server","--listen","127.0.0.1:0","--relay","--no-console","--max-message","1024"],stdout=subprocess.PIPE,stderr=subprocess.PIPE)
addr=srv.stdout.readline().decode().split()[-1]
# Reads the server's output; the readers are ready once it has printed their
# "connected" lines.
ready=threading.Event()
def server_lines():
    connected=0
    for line in srv.stdout:
        if b"connected as" in line:
            connected+=1
            if connected==R: ready.set()
threading.Thread(target=server_lines, daemon=True).start()
errs=[]
threading.Thread(target=lambda: [errs.append(l) for l in srv.stderr], daemon=True).start()
counts=[0]*R; done=[threading.Event() for _ in range(R)]
recv=[]
def reader(i,p):
    for line in p.stdout:
        counts[i]+=1
        if counts[i]>=N: done[i].set()
    done[i].set()
for i in range(R):
    p=subprocess.Popen([B,"client","--connect",addr,"--name",f"r{i}","--stop-word","none"],stdin=subprocess.PIPE,stdout=subprocess.PIPE,stderr=subprocess.DEVNULL)
    recv.append(p); threading.Thread(target=reader,args=(i,p),daemon=True).start()
if not ready.wait(30): sys.exit("the readers did not connect")
t0=time.time()
data="".join(f"{i:08d} message\n" for i in range(N)).encode()
s=subprocess.run([B,"client","--connect",addr,"--name","s","--stop-word","none"],input=data,capture_output=True,timeout=120)
t1=time.time()
for d in done: d.wait(60)
t2=time.time()
print(f"{N} messages of 17 bytes relayed to {R} clients: sender done in {t1-t0:.2f}s, all received in {t2-t0:.2f}s ({N*R/(t2-t0):.0f} deliveries/s); counts {counts}")
print("sender:", s.stderr.decode().strip().splitlines()[-1])
print("server stderr:", [l.decode().strip() for l in errs][:5])
for p in recv: p.kill()
srv.kill()
