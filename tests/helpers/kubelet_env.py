"""Service environment variables written out by hand, shared by the tests
of coredns_py.pod.envvars (test_envvars) and of ``coredns-py env``
(test_env_cli): never computed by the code under test.
"""

# default/kubernetes as kubeadm makes it (clusterIP 10.96.0.1, one port "https"
# 443/TCP; zones/00-cluster/kubernetes.yaml is the same): the variables it
# gives a pod.
MASTER_KUBEADM_VARS = {
    "KUBERNETES_SERVICE_HOST": "10.96.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
    "KUBERNETES_SERVICE_PORT_HTTPS": "443",
    "KUBERNETES_PORT": "tcp://10.96.0.1:443",
    "KUBERNETES_PORT_443_TCP": "tcp://10.96.0.1:443",
    "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
    "KUBERNETES_PORT_443_TCP_PORT": "443",
    "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
}
