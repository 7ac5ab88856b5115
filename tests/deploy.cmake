# The containerised deployments, run for real (root; skipped otherwise): the offline manifest
# checks, the three images under docker-compose (against podman's Docker API), and the
# Kubernetes pod under `podman kube play`. The first run on a machine also makes the Debian base
# image (debootstrap, a few minutes); later runs reuse it and the image layers.
ef_add_integration_test(deploy_manifests SCRIPT integration/deploy_manifests.sh TIMEOUT 120)
ef_add_integration_test(deploy_compose SCRIPT integration/deploy_compose.sh TIMEOUT 1200)
ef_add_integration_test(deploy_kube SCRIPT integration/deploy_kube.sh TIMEOUT 1200)
