"""Container runtimes behind one contract (`interface.Runtime`): the process
runtime now, runc later, without the kubelet changing."""
