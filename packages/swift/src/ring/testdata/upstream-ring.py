"""Asks Debian's upstream Swift (python3-swift) about a ring, for the interop tests.

usage: upstream-ring.py lookup <ring.gz> <prefix> <suffix> <handoffs>   (JSON list of [a, c?, o?] on stdin)
       upstream-ring.py builder <args of swift-ring-builder...>
"""
import json
import sys


def lookup(ring_path, prefix, suffix, handoffs):
    from swift.common import utils
    # Set the salt directly so /etc/swift/swift.conf is never read.
    utils.HASH_PATH_PREFIX = prefix.encode('latin1')
    utils.HASH_PATH_SUFFIX = suffix.encode('latin1')
    from swift.common.ring import Ring
    ring = Ring(ring_path)
    out = []
    for path in json.load(sys.stdin):
        part, nodes = ring.get_nodes(*path)
        more = []
        for node in ring.get_more_nodes(part):
            if len(more) >= handoffs:
                break
            more.append(node['id'])
        out.append({'part': part, 'nodes': [n['id'] for n in nodes],
                    'index': [n['index'] for n in nodes], 'handoffs': more})
    json.dump(out, sys.stdout)


def builder(args):
    from swift.cli.ringbuilder import main
    try:
        main(['swift-ring-builder'] + args)
    except SystemExit as e:
        # 1 is a warning (e.g. balance) in swift-ring-builder's exit codes
        if e.code not in (None, 0, 1):
            raise


if __name__ == '__main__':
    if sys.argv[1] == 'lookup':
        lookup(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif sys.argv[1] == 'builder':
        builder(sys.argv[2:])
    else:
        sys.exit('unknown command')
