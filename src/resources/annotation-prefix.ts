/** The prefix of every ingress-nginx annotation; its own module so the data-plane policies can name keys without loading the annotation catalogue. */
export const NGINX_PREFIX = 'nginx.ingress.kubernetes.io/'
