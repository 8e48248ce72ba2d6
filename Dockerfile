# One image, one executable: `lazarus <webhook|extender|controller|agent|certs|explain|checkpoint|demo>`.
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY api api
COPY kube kube
COPY runtime runtime
COPY cli cli
COPY webhook webhook
COPY extender extender
COPY certs certs
COPY controller controller
COPY agent agent
COPY explain explain
# demo/*.ts only: `lazarus demo --kubeconfig K` runs from the image; demo/checkout/ (its own local
# control plane, real nodes) is built on test/harness and runs from a source checkout.
COPY demo/*.ts demo/
RUN npx tsc -p tsconfig.json

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:20-bookworm-slim
# nsenter (util-linux) lets the agent run the host's criu in the host mount namespace.
RUN apt-get update && apt-get install -y --no-install-recommends util-linux && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY --from=build /src/dist dist
COPY package.json ./
COPY bin bin
COPY charts/lazarus/crds charts/lazarus/crds
USER 65532:65532
ENTRYPOINT ["node", "/app/bin/lazarus.js"]
