// A virtual network with one subnet for the cluster's nodes, on which the
// cluster's identity is Network Contributor.
param location string
param name string
param clusterPrincipalId string
param addressPrefix string = '10.40.0.0/16'
param nodeSubnetPrefix string = '10.40.0.0/22'

resource vnet 'Microsoft.Network/virtualNetworks@2024-01-01' = {
  name: name
  location: location
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: 'snet-aks-nodes'
        properties: {
          addressPrefix: nodeSubnetPrefix
        }
      }
    ]
  }
}

resource nodeSubnet 'Microsoft.Network/virtualNetworks/subnets@2024-01-01' existing = {
  parent: vnet
  name: 'snet-aks-nodes'
}

// Network Contributor, a built-in role (the same id in every tenant).
var networkContributor = '4d97b98b-1d4f-4787-a291-c67834d212e7'

resource clusterOnSubnet 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: nodeSubnet
  name: guid(nodeSubnet.id, clusterPrincipalId, networkContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', networkContributor)
    principalId: clusterPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output nodeSubnetId string = nodeSubnet.id
